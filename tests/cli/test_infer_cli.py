"""``edgecv infer`` through click's CliRunner and through a real subprocess interrupted by signals."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
import _infer_fixtures as F  # noqa: E402

from edgecv.cli import cli  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("infer")
    F.write_images(d / "imgs", ["red", "green", "blue", "red"])
    (d / "imgs" / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    return {
        "dir": d,
        "model": F.image_model(d / "colour.onnx"),
        "fp16": F.image_model(d / "fp16.onnx", contract=False, batch=1, dtype="float16", softmax=True),
        "text": F.text_model(d / "text.onnx", attention=True),
        "plain_text": F.text_model(d / "plain_text.onnx"),
        "video": F.write_video(d / "clip.mp4", F.video_colours(24), fps=24),
        "imgs": d / "imgs",
    }


def invoke(*args: str):
    return CliRunner().invoke(cli, ["infer", *map(str, args)], catch_exceptions=False)


def test_help_has_example():
    result = invoke("--help")
    assert result.exit_code == 0 and "edgecv infer model.onnx --camera 0" in result.output
    for flag in ("--labels", "--resize", "--crop", "--scale", "--mean", "--std", "--bgr", "--smooth", "--stride"):
        assert flag in result.output


def test_single_image(files):
    img = next(files["imgs"].glob("000_*.png"))
    result = invoke(files["model"], img, "--provider", "cpu", "--threads", "1", "--top-k", "2")
    assert result.exit_code == 0, result.output
    assert "onnxruntime provider CPUExecutionProvider, precision fp32, threads 1" in result.output
    assert f"{img}  red 0.999  [red 0.999, green 0.000]" in result.output
    # one image: the result line and one line of timings, no stage table of one-sample percentiles
    assert "1 image in" in result.output and "inference" in result.output.splitlines()[-1]
    assert "p95 ms" not in result.output and "dropped frames" not in result.output and "1 frames" not in result.output
    verbose = invoke(files["model"], img, "--provider", "cpu", "--threads", "1", "--verbose")
    assert "p95 ms" in verbose.output and "1 frame in" in verbose.output


def test_folder_json_csv_and_unreadable(files, tmp_path):
    out_json, out_csv = tmp_path / "o.jsonl", tmp_path / "o.csv"
    result = invoke(files["model"], files["imgs"], "--provider", "cpu", "--batch-size", "3",
                    "--json", out_json, "--csv", out_csv)
    assert result.exit_code == 0, result.output
    assert "unreadable inputs: 1" in result.output and "corrupt.jpg" in result.output
    rows = [json.loads(x) for x in out_json.read_text().splitlines()]
    assert len(rows) == 4
    assert {Path(r["source"]).name.split("_")[1].split(".")[0] for r in rows} == {"red", "green", "blue"}
    for r in rows:
        assert r["top_k"][0]["label"] in Path(r["source"]).name and r["latency_ms"] > 0
    assert len(out_csv.read_text().splitlines()) == 5


def test_video_save_json_report(files, tmp_path):
    out, js, rep = tmp_path / "ann.mp4", tmp_path / "v.jsonl", tmp_path / "report.json"
    result = invoke(files["model"], files["video"], "--provider", "cpu", "--save", out, "--json", js,
                    "--report", rep, "--stride", "2")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in js.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(0, 24, 2))
    assert [r["top_k"][0]["label"] for r in rows] == F.video_colours(24)[::2]
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12, abs=0.1)
    report = json.loads(rep.read_text())
    assert report["frames"] == 12 and set(report["stages"]) == {"capture", "preprocess", "inference", "postprocess"}


def test_json_to_stdout(files):
    result = invoke(files["model"], files["video"], "--provider", "cpu", "--json", "-", "--max-frames", "3")
    assert result.exit_code == 0
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 3


def test_text_and_attention(files, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("awful movie\n\ngood good\n")
    result = invoke(files["text"], "--text", "the movie was great", "--text-file", lines, "--show-attention",
                    "--provider", "cpu")
    assert result.exit_code == 0, result.output
    assert "positive" in result.output and "negative" in result.output
    assert "great  -> great" in result.output and "averaged over heads" in result.output


def test_foreign_model_with_flags(files, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("rot\ngruen\nblau\n")
    img = next(files["imgs"].glob("002_*.png"))
    result = invoke(files["fp16"], img, "--labels", labels, "--stretch", "--mean", "0,0,0", "--std", "1",
                    "--provider", "cpu")
    assert result.exit_code == 0, result.output
    assert "blau 0.99" in result.output and "(1, 3, 16, 16) float16" in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["MISSING.onnx", "x.png"], 1, "MISSING.onnx: file not found"),
        (["{model}"], 2, "give exactly one of"),
        (["{model}", "{imgs}", "--text", "hi"], 2, "give exactly one of"),
        (["{model}", "nothere.png"], 1, "nothere.png: file or folder not found"),
        (["{plain_text}", "--text", "good", "--show-attention"], 1, "has no 'attention' output"),
        (["{fp16}", "{imgs}", "--labels", "imagenet"], 1, "1000 labels given but the model has 3 outputs"),
        (["{model}", "{imgs}", "--size", "1,2,3"], 2, "'--size': '1,2,3': expected 1 or 2 comma-separated"),
        (["{text}", "{imgs}"], 1, "is a text model"),
        (["{model}", "--camera", "97"], 1, "camera 97: cannot open"),
        (["{model}", "{imgs}", "--save", "x.mp4"], 1, "--save needs a video"),
    ],
)
def test_errors_are_one_line(files, args, code, message):
    result = CliRunner().invoke(cli, ["infer", *[a.format(**{k: str(v) for k, v in files.items()}) for a in args],
                                      "--provider", "cpu"])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unreachable_stream_url_exits_1_after_retries(files):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/video.mjpg"
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, ["infer", str(files["model"]), url, "--retries", "1", "--provider", "cpu"])
    assert result.exit_code == 1
    assert f"{url}: cannot open stream after 2 attempts" in result.output  # the first open + 1 retry
    assert time.perf_counter() - t0 < 30


def test_all_unreadable_is_exit_1(tmp_path, files):
    (tmp_path / "bad.png").write_bytes(b"x")
    result = CliRunner().invoke(cli, ["infer", str(files["model"]), str(tmp_path / "bad.png"), "--provider", "cpu"])
    assert result.exit_code == 1 and "no frames could be classified (1 unreadable inputs)" in result.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_video_exits_cleanly(tmp_path, sig):
    """A real process interrupted midway: exit 0, complete JSON lines, a playable finalised mp4."""
    model = F.image_model(tmp_path / "heavy.onnx", heavy=10, size=64)
    video = F.write_video(tmp_path / "long.mp4", F.video_colours(600), fps=30, size=(96, 72))
    out, js = tmp_path / "ann.mp4", tmp_path / "o.jsonl"
    cmd = [sys.executable, "-m", "edgecv", "infer", str(model), str(video), "--provider", "cpu", "--threads", "1",
           "--save", str(out), "--json", str(js)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not js.exists() or len(js.read_text().splitlines()) < 20):
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the signal; make the test video longer"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped early (Ctrl-C, SIGTERM" in stdout and "Traceback" not in stderr
    rows = [json.loads(x) for x in js.read_text().splitlines()]  # every line complete
    assert 20 <= len(rows) < 600 and [r["frame"] for r in rows] == list(range(len(rows)))
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == len(rows)


def test_text_file_with_utf8_bom_and_blank_lines(files, tmp_path):
    lines = tmp_path / "bom.txt"
    lines.write_bytes("\ufeffgreat movie\r\n\r\nawful\r\n".encode("utf-8"))
    result = invoke(files["plain_text"], "--text-file", lines, "--provider", "cpu", "--json", tmp_path / "t.jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [(r["source"], r["top_k"][0]["label"]) for r in rows] == [("great movie", "positive"), ("awful", "negative")]
