"""``edgecv infer`` given bad inputs, through a real subprocess: exit 1 (usage errors 2), exactly one
line on stderr naming the input and what was expected, no traceback, no native library noise
(FFmpeg's ``moov atom not found``, OpenCV's ``[ WARN ]`` camera probing, ``Connection refused``),
and nothing written before the failure."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
import _infer_fixtures as F  # noqa: E402
from _cli import assert_clean_failure, run_edgecv  # noqa: E402

CPU = ("--provider", "cpu")


@pytest.fixture(autouse=True)
def _no_inherited_log_settings(monkeypatch):
    """The subprocess must start as a user's shell would: an in-process CLI test (CliRunner) may
    have set OpenCV's log variables in this process's environment, and they would be inherited."""
    for key in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("badinfer")
    F.write_images(d / "imgs", ["red", "green"], nested=False)
    video = F.write_video(d / "full.mp4", F.video_colours(60), size=(96, 72))
    truncated = d / "truncated.mp4"  # mp4v keeps its index (moov atom) at the end: cut, it is gone
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    (d / "zero.mp4").write_bytes(b"")
    (d / "lfs.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:"
                                + "0" * 64 + "\nsize 14000000\n")
    (d / "latin1.txt").write_bytes("good movie\nd\xe9j\xe0 vu, awful\n".encode("latin-1"))
    (d / "a_file").write_text("x")
    return {"dir": d, "model": F.image_model(d / "colour.onnx"), "text": F.text_model(d / "text.onnx"),
            "features": F.feature_map_model(d / "features.onnx"),
            "dyn_features": F.feature_map_model(d / "dyn_features.onnx", dynamic=True),
            "int_image": F.int_image_model(d / "int_image.onnx"), "video": video, "truncated": truncated,
            "zero": d / "zero.mp4", "lfs": d / "lfs.onnx", "latin1": d / "latin1.txt", "imgs": d / "imgs"}


def _free_port() -> int:
    with socket.socket() as sock:  # free a moment ago: nothing listens, the connection is refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- 1: not a classifier
def test_feature_map_output_is_refused_at_load(files):
    proc = run_edgecv("infer", files["features"], files["imgs"], *CPU)
    assert_clean_failure(proc, names=[files["features"]], says=["(1, 8, 32, 32)", "(N, C)", "not a classifier"])
    assert "8192" not in proc.stdout


def test_dynamic_feature_map_output_is_refused_at_run_time(files):
    proc = run_edgecv("infer", files["dyn_features"], files["imgs"], *CPU)
    assert_clean_failure(proc, names=[files["dyn_features"]], says=["came out with shape (1, 8, 224, 224)", "(N, C)"])


# ----------------------------------------------------------------------------- 3: native log noise
@pytest.mark.parametrize("key, says", [("zero", "empty"), ("truncated", "cannot open video")])
def test_broken_video_is_one_line_without_ffmpeg_noise(files, key, says):
    proc = run_edgecv("infer", files["model"], files[key], *CPU)
    line = assert_clean_failure(proc, names=[files[key]], says=[says, "expected"])
    assert "moov atom" not in proc.stderr and "WARN" not in proc.stderr, line


def test_missing_camera_is_one_line_without_probing_noise(files):
    proc = run_edgecv("infer", files["model"], "--camera", "97", *CPU)
    assert_clean_failure(proc, says=["camera 97", "cannot open"])


def test_unreachable_stream_is_one_line_without_connection_noise(files):
    url = f"http://127.0.0.1:{_free_port()}/x.mjpg"
    proc = run_edgecv("infer", files["model"], url, "--retries", "0", *CPU, timeout=60)
    line = assert_clean_failure(proc, says=[url, "cannot open stream"])
    assert "Connection refused" not in line


def test_verbose_shows_ffmpeg_log_again(files):
    proc = run_edgecv("infer", files["model"], files["truncated"], *CPU, "--verbose")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "moov atom not found" in proc.stderr


def test_user_log_settings_are_respected(files):
    env = {"OPENCV_FFMPEG_LOGLEVEL": "16", "OPENCV_LOG_LEVEL": "WARNING"}
    proc = run_edgecv("infer", files["model"], files["truncated"], *CPU, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # OpenCV routes FFmpeg's log through its own callback (stdout) once the level is set
    assert "moov atom not found" in proc.stdout + proc.stderr and "WARN" in proc.stderr


# ----------------------------------------------------------------------------- 4, 5: text
@pytest.mark.parametrize("text, says", [("", "empty"), ("   ", "whitespace")])
def test_empty_text_is_a_usage_error(files, text, says):
    proc = run_edgecv("infer", files["text"], "--text", text, *CPU)
    assert_clean_failure(proc, code=2, says=["--text", says, "expected words"])


def test_text_file_not_utf8_names_file_and_line(files):
    proc = run_edgecv("infer", files["text"], "--text-file", files["latin1"], *CPU)
    assert_clean_failure(proc, names=[files["latin1"]], says=["line 2", "not UTF-8", "expected a UTF-8"])


def test_blank_text_file_is_refused(files, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    proc = run_edgecv("infer", files["text"], "--text-file", blank, *CPU)
    assert_clean_failure(proc, names=[blank], says=["no text"])


# ----------------------------------------------------------------------------- 9: words
def test_lfs_pointer_says_so(files):
    proc = run_edgecv("infer", files["lfs"], files["imgs"], *CPU)
    line = assert_clean_failure(proc, names=[files["lfs"]], says=["Git LFS pointer", "git lfs pull"])
    assert "protobuf" not in line.lower()


def test_integer_image_input_is_not_called_a_text_model(files):
    proc = run_edgecv("infer", files["int_image"], files["imgs"], *CPU)
    line = assert_clean_failure(proc, names=[files["int_image"]],
                                says=["integer image input", "(N, 3, 224, 224) int64", "expected float32"])
    assert "is a text model" not in line


def test_text_flags_on_image_model_name_flags_not_python_calls(files):
    proc = run_edgecv("infer", files["model"], "--text", "good", *CPU)
    line = assert_clean_failure(proc, names=[files["model"]], says=["image model", "--text"])
    assert "predict" not in line


def test_images_on_text_model_name_flags(files):
    proc = run_edgecv("infer", files["text"], files["imgs"], *CPU)
    line = assert_clean_failure(proc, names=[files["text"]], says=["text model", "--text"])
    assert "predict" not in line


# ----------------------------------------------------------------------------- 8: writes
@pytest.mark.parametrize("flag, target, says", [
    ("--json", "/proc/x.jsonl", "cannot write"),
    ("--csv", "{a_file}/out.csv", "is not a folder"),
    ("--json", "{dir}", "is a folder"),
    ("--report", "/proc/r.json", "cannot write"),
    ("--save", "/proc/x.mp4", "cannot write"),
    ("--save", "{dir}/out.gif", "unsupported video extension"),
])
def test_unwritable_output_fails_before_any_frame(files, tmp_path, flag, target, says):
    target = target.format(a_file=files["dir"] / "a_file", dir=tmp_path)
    ok_json = tmp_path / "ok.jsonl"
    proc = run_edgecv("infer", files["model"], files["video"], *CPU, "--json", ok_json, flag, target)
    assert_clean_failure(proc, says=[flag, Path(target).name, says])
    assert proc.stdout == ""  # failed before the model loaded, so before any frame
    if flag != "--json":
        assert not ok_json.exists()  # no output was opened before the failing one was checked
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob("*.tmp"))


def test_existing_folder_as_save_is_a_usage_error(files, tmp_path):
    proc = run_edgecv("infer", files["model"], files["video"], *CPU, "--save", tmp_path)
    assert_clean_failure(proc, code=2, says=["--save", tmp_path.name, "directory"])


def test_save_for_images_creates_no_other_output(files, tmp_path):
    ok_json = tmp_path / "ok.jsonl"
    proc = run_edgecv("infer", files["model"], files["imgs"], *CPU, "--json", ok_json, "--save", tmp_path / "a.mp4")
    assert_clean_failure(proc, says=["--save", "a.mp4", "video, camera or stream"])
    assert not ok_json.exists()


# ----------------------------------------------------------------------------- 13: smoothing
def test_smooth_on_a_folder_is_one_notice(files):
    proc = run_edgecv("infer", files["model"], files["imgs"], *CPU, "--smooth", "0.5", "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--smooth" in lines[0] and "not smoothed" in lines[0]
