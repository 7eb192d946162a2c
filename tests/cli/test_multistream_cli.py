"""``edgecv infer`` with several streams: repeated --camera (fake captures in-process), videos
and a local HTTP MJPEG stream together, --streams files (and their bad lines), per-stream
outputs, a stream lost while the others go on, every stream lost (exit 1, one line), and SIGINT
to a real subprocess writing several --save files that must all stay playable."""
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
sys.path.insert(0, str(Path(__file__).parents[1] / "badinput"))
import _infer_fixtures as F  # noqa: E402
from _cli import assert_clean_failure, run_edgecv  # noqa: E402
from test_multistream import MjpegServer  # noqa: E402

from edgecv.cli import cli  # noqa: E402
from edgecv.runtimes.streaming import sources as S  # noqa: E402

CPU = ("--provider", "cpu", "--threads", "1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    (d / "photo.png").write_bytes(cv2.imencode(".png", F.solid("red"))[1].tobytes())
    (d / "notes.txt").write_text("not a video\n")
    return {"dir": d, "model": F.image_model(d / "colour.onnx"),
            "a": F.write_video(d / "a.mp4", F.video_colours(40), fps=20),
            "b": F.write_video(d / "b.mp4", ["blue"] * 40, fps=20)}


@pytest.fixture()
def camera():
    server = MjpegServer("green", fps=30)
    yield server
    server.close()


def invoke(*args):
    return CliRunner().invoke(cli, ["infer", *map(str, args)], catch_exceptions=False)


def frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def _refused_url() -> str:
    import socket

    with socket.socket() as sock:  # free a moment ago: the connection is refused
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/x.mjpg"


def test_help_shows_the_multi_stream_flags():
    result = invoke("--help")
    assert result.exit_code == 0
    for text in ("--streams", "--mosaic", "--max-wait-ms", "--fps-limit", "--realtime", "--camera 0 --camera 1"):
        assert text in result.output


def test_repeated_camera_flags(files, tmp_path, monkeypatch):
    colours = {0: "red", 1: "blue"}
    monkeypatch.setattr(cv2, "VideoCapture", lambda index, *a: S.FakeCapture(fps=30, colour=F.BGR[colours[index]]))
    js = tmp_path / "o.jsonl"
    result = invoke(files["model"], "--camera", 0, "--camera", 1, *CPU, "--max-frames", 12, "--json", js)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in js.read_text().splitlines()]
    assert {(r["stream"], r["source"], r["top_k"][0]["label"]) for r in rows} == {
        ("cam0", "camera 0", "red"), ("cam1", "camera 1", "blue")}
    assert sum(r["stream"] == "cam0" for r in rows) == 12 and len(rows) == 24
    assert "total: 24 frames from 2 streams" in result.output and "cam1" in result.output


def test_videos_and_mjpeg_url_with_every_output(files, tmp_path, camera):
    out, js, rep = tmp_path / "out.mp4", tmp_path / "o.jsonl", tmp_path / "r.json"
    result = invoke(files["model"], files["a"], files["b"], camera.url, *CPU, "--max-frames", 20, "--save", out,
                    "--mosaic", tmp_path / "wall.mp4", "--json", js, "--csv", tmp_path / "o.csv", "--report", rep)
    assert result.exit_code == 0, result.output
    report = json.loads(rep.read_text())
    streams = {s["stream"]: s for s in report["streams"]}
    cam = [k for k in streams if k.endswith("_cam")][0]
    assert set(streams) == {"a", "b", cam} and report["totals"]["frames"] == 60
    rows = [json.loads(x) for x in js.read_text().splitlines()]
    for sid, s in streams.items():
        mine = [r for r in rows if r["stream"] == sid]
        assert len(mine) == s["frames"] == 20 == frames_in(tmp_path / f"out_{sid}.mp4")
    assert [r["top_k"][0]["label"] for r in rows if r["stream"] == "a"] == F.video_colours(20)
    assert {r["top_k"][0]["label"] for r in rows if r["stream"] == cam} == {"green"}
    assert frames_in(tmp_path / "wall.mp4") >= 20
    assert (tmp_path / "o.csv").read_text().startswith("stream,source,frame,label")
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_streams_file_with_comments_and_blank_lines(files, tmp_path, camera):
    cams = tmp_path / "cams.txt"
    cams.write_text(f"# lobby cameras\n\n{files['a']}   # recorded\n  {camera.url}\n\n# end\n")
    js = tmp_path / "o.jsonl"
    result = invoke(files["model"], "--streams", cams, *CPU, "--max-frames", 8, "--json", js, "--quiet")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in js.read_text().splitlines()]
    assert sorted({r["stream"] for r in rows}) == sorted(["a", [r["stream"] for r in rows if r["stream"] != "a"][0]])
    assert len(rows) == 16


def test_streams_file_bad_line_is_one_line_naming_file_and_line(files, tmp_path):
    cams = tmp_path / "cams.txt"
    cams.write_text(f"# cameras\n0\n\n{files['dir'] / 'photo.png'}\n")
    proc = run_edgecv("infer", files["model"], "--streams", cams, *CPU)
    assert_clean_failure(proc, names=[cams], says=["line 4", "photo.png", "not a stream", "expected a camera index"])
    assert proc.stdout == ""  # refused before the model loaded or a camera opened


@pytest.mark.parametrize("line, says", [
    ("-1", "not a camera index"), ("{dir}/missing.mp4", "does not exist"), ("{dir}/notes.txt", "not a video file"),
    ("rtsp://", "not a valid URL"), ("", "lists no stream"),
])
def test_streams_file_bad_lines(files, tmp_path, line, says):
    cams = tmp_path / "cams.txt"
    cams.write_text("# only this:\n" + line.format(dir=files["dir"]) + "\n")
    result = CliRunner().invoke(cli, ["infer", str(files["model"]), "--streams", str(cams), *CPU])
    assert result.exit_code == 1 and says in result.output and str(cams) in result.output, result.output
    assert ("line 2" in result.output) == bool(line)


def test_mixing_images_with_streams_is_refused(files):
    result = CliRunner().invoke(cli, ["infer", str(files["model"]), str(files["a"]), str(files["dir"] / "photo.png"),
                                      *CPU])
    assert result.exit_code == 1 and "photo.png: is an image or a folder, not a stream" in result.output


def test_mosaic_of_one_stream_and_not_of_images(files, tmp_path):
    result = invoke(files["model"], files["b"], *CPU, "--mosaic", tmp_path / "wall.mp4")
    assert result.exit_code == 0 and "total: 40 frames from 1 streams" in result.output, result.output
    assert frames_in(tmp_path / "wall.mp4") == 40
    result = CliRunner().invoke(cli, ["infer", str(files["model"]), str(files["dir"] / "photo.png"), *CPU,
                                      "--mosaic", str(tmp_path / "w.mp4")])
    assert result.exit_code == 1 and "--mosaic" in result.output and "not images" in result.output


def test_text_with_cameras_is_a_usage_error(files):
    result = CliRunner().invoke(cli, ["infer", str(files["model"]), "--camera", "0", "--camera", "1", "--text", "hi"])
    assert result.exit_code == 2 and "give exactly one of" in result.output


def test_one_stream_lost_while_the_other_goes_on(files, tmp_path):
    url = _refused_url()
    rep = tmp_path / "r.json"
    result = invoke(files["model"], files["a"], url, *CPU, "--retries", 0, "--report", rep)
    assert result.exit_code == 0, result.output
    assert "cannot open stream after 1 attempt" in result.output
    streams = {s["stream"]: s for s in json.loads(rep.read_text())["streams"]}
    assert streams["a"]["frames"] == 40 and streams["a"]["state"] == "ended"
    assert [s["state"] for k, s in streams.items() if k != "a"] == ["lost"]


def test_every_stream_lost_is_exit_1_with_one_line(files):
    urls = [_refused_url(), _refused_url()]
    proc = run_edgecv("infer", files["model"], *urls, *CPU, "--retries", "0", timeout=60)
    line = assert_clean_failure(proc, says=["all 2 streams lost", urls[0], urls[1], "cannot open stream"])
    assert "Connection refused" not in line


def test_sigint_flushes_every_save_file(files, tmp_path, camera):
    """A real process with three streams and three --save files, interrupted midway: exit 0,
    complete JSON lines, and every file playable with as many frames as its stream classified."""
    long = F.write_video(tmp_path / "long.mp4", F.video_colours(600), fps=30)
    red = F.write_video(tmp_path / "red.mp4", ["red"] * 600, fps=30)
    out, js = tmp_path / "out.mp4", tmp_path / "o.jsonl"
    cmd = [sys.executable, "-m", "edgecv", "infer", str(files["model"]), str(long), str(red), camera.url, *CPU,
           "--realtime", "--save", str(out), "--json", str(js)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not js.exists() or len(js.read_text().splitlines()) < 90):
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the signal"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped early (Ctrl-C, SIGTERM" in stdout and "Traceback" not in stderr
    rows = [json.loads(x) for x in js.read_text().splitlines()]
    per_stream: dict[str, int] = {}
    for r in rows:
        per_stream[r["stream"]] = per_stream.get(r["stream"], 0) + 1
    assert len(per_stream) == 3 and min(per_stream.values()) >= 10
    for sid, n in per_stream.items():
        assert frames_in(tmp_path / f"out_{sid}.mp4") == n, sid
    assert not list(tmp_path.glob(".*partial*"))


def test_engine_options_cover_one_frame_per_stream() -> None:
    """TensorRT builds its optimisation profile for the batch sizes the command will run: with
    several streams a tick batches up to one frame per stream, beyond --batch-size."""
    from edgecv.commands.infer import InferOptions

    several = InferOptions(model=Path("m.onnx"), inputs=("rtsp://a/1", "http://b/x"), camera=(0,))
    assert max(several.engine_options().batch_sizes) == 3
    images = InferOptions(model=Path("m.onnx"), inputs=("img.png",), batch_size=8)
    assert images.engine_options().batch_sizes == (1, 8)
