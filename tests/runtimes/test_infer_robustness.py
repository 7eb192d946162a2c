"""Correctness fixes of the inference path: classifier-shaped outputs only, captures released on
close, the video writer across a resolution change, thread-safe stage statistics, no smoothing
across unrelated images, and URL captures that time out instead of hanging."""
from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import ModelError  # noqa: E402
from edgecv.runtimes import TopK, load  # noqa: E402
from edgecv.runtimes.inputs import check_output_shape  # noqa: E402
from edgecv.runtimes.streaming import sources as S  # noqa: E402
from edgecv.runtimes.streaming.outputs import VideoSink  # noqa: E402
from edgecv.runtimes.streaming.stream import FrameResult, RingStats, StreamOptions, run_stream  # noqa: E402


# ----------------------------------------------------------------------------- output shapes
@pytest.mark.parametrize("dims, recheck", [
    (["N", 10], False), (["N", 10, 1, 1], False), (["N", 1, 1, 10], False), (["N", 1, 10], False),
    (["N", "C"], False), (["N", "C", 1, 1], False), (["N", 8, "H", "W"], True), ([], True),
])
def test_classifier_shaped_outputs_are_accepted(dims, recheck):
    assert check_output_shape(dims, name="out") is recheck


@pytest.mark.parametrize("dims", [[1, 8, 32, 32], [10], ["N", 4, 10], ["N", 2, 3, 4, 5], [1, 8, 32, 1]])
def test_other_outputs_are_refused_naming_the_shape(dims):
    with pytest.raises(ModelError, match=r"has shape \(.*\), not a classifier's scores; expected .*\(N, C\)"):
        check_output_shape(dims, name="out", source="m.onnx")


def test_load_refuses_a_feature_map_model(tmp_path):
    path = F.feature_map_model(tmp_path / "fm.onnx")
    with pytest.raises(ModelError, match=r"fm.onnx: output 'features' has shape \(1, 8, 32, 32\)"):
        load(path, provider="cpu")


def test_dynamic_output_is_checked_on_the_real_output(tmp_path):
    clf = load(F.feature_map_model(tmp_path / "fmd.onnx", dynamic=True), provider="cpu")
    with pytest.raises(ModelError, match=r"came out with shape \(1, 8, 224, 224\)"):
        clf.predict(F.solid("red"))


def test_n11c_scores_are_a_classifier(tmp_path):
    clf = load(F.nhwc_scores_model(tmp_path / "nhwc.onnx"), provider="cpu", stretch=True, mean="0,0,0", std="1")
    assert [clf.predict(F.solid(c)).index for c in F.COLOURS] == [0, 1, 2]


def test_integer_image_input_is_named_as_such(tmp_path):
    with pytest.raises(ModelError, match=r"\(N, 3, 224, 224\) int64 is an integer image input; expected float32"):
        load(F.int_image_model(tmp_path / "int.onnx"), provider="cpu")


# ----------------------------------------------------------------------------- sources
def test_video_source_closed_before_iteration_releases_its_capture(tmp_path):
    src = S.VideoFileSource(F.write_video(tmp_path / "v.mp4", F.video_colours(5)))
    cap = src._cap
    assert cap.isOpened()
    src.close()
    assert not cap.isOpened()
    src.close()  # twice is fine


def test_video_source_closed_after_iteration_releases_its_capture(tmp_path):
    with S.VideoFileSource(F.write_video(tmp_path / "v.mp4", F.video_colours(5))) as src:
        assert len(list(src)) == 5
    assert not src._cap.isOpened()


class _Server:
    """A local TCP server: ``frames`` MJPEG parts over HTTP, then silence (``frames=None``: it
    accepts and never answers)."""

    def __init__(self, frames: int | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x.mjpg"
        self.frames, self.conns = frames, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        jpg = cv2.imencode(".jpg", F.solid("red", 48, 64))[1].tobytes()
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.frames is None:
                continue
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n")
            for _ in range(self.frames):
                conn.sendall(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpg), jpg))

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_url_capture_opens_on_ffmpeg_with_timeouts(monkeypatch):
    calls = []
    monkeypatch.setattr(S.cv2, "VideoCapture", lambda *a: calls.append(a))
    S.open_url_capture("rtsp://cam/x", open_timeout_ms=1234, read_timeout_ms=567)
    assert calls == [("rtsp://cam/x", cv2.CAP_FFMPEG,
                      [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 1234, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 567])]


def test_silent_server_open_times_out():
    server = _Server(frames=None)
    try:
        t0 = time.perf_counter()
        with pytest.raises(S.StreamLost, match="cannot open stream after 1 attempt"):
            S.open_url(server.url, retries=0, open_timeout_ms=300, read_timeout_ms=300)
        assert time.perf_counter() - t0 < 5  # FFmpeg's own default would wait 30 s
    finally:
        server.close()


def test_stalled_stream_does_not_outlive_close():
    server = _Server(frames=3)
    try:
        src = S.open_url(server.url, retries=3, open_timeout_ms=1000, read_timeout_ms=300)
        assert src.read(timeout=5.0) is not None
        time.sleep(0.1)  # the capture thread is now blocked in a read of the silent stream
        t0 = time.perf_counter()
        src.close()
        assert time.perf_counter() - t0 < 2.0 and not src._thread.is_alive()
    finally:
        server.close()


# ----------------------------------------------------------------------------- video writer
def test_video_writer_keeps_every_frame_across_a_resolution_change(tmp_path):
    out = tmp_path / "out.avi"
    sink = VideoSink(out, fps=10.0)
    sizes = [(64, 48)] * 4 + [(80, 60)] * 3 + [(32, 24)] * 3  # (w, h)
    for i, (w, h) in enumerate(sizes):
        sink.write(FrameResult("s", i, [TopK("red", 0, 0.9)], np.zeros(3, np.float32), 1.0, 1.0, 10.0,
                               F.solid("red", h, w)))
    sink.close()
    assert sink.frames == len(sizes)
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame.shape)
    cap.release()
    assert frames == [(48, 64, 3)] * len(sizes)


# ----------------------------------------------------------------------------- stream loop
def test_ring_stats_are_consistent_under_concurrent_writers():
    stats = RingStats(capacity=64)
    n_threads, per_thread = 4, 5000

    def add() -> None:
        for _ in range(per_thread):
            stats.add(1.0)

    threads = [threading.Thread(target=add) for _ in range(n_threads)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        s = stats.summary()
        assert s["n"] == 0 or s["mean_ms"] == pytest.approx(1.0)
    for t in threads:
        t.join()
    assert stats.summary()["n"] == n_threads * per_thread


def test_smoothing_is_not_applied_to_an_image_folder(tmp_path):
    clf = load(F.image_model(tmp_path / "m.onnx"), provider="cpu", threads=1)
    F.write_images(tmp_path / "imgs", ["red", "blue", "red", "green"], nested=False)
    raw, smooth = [], []
    opts = dict(handle_signals=False, warmup=False)
    run_stream(clf, S.ImageSource([tmp_path / "imgs"]), StreamOptions(**opts), on_result=raw.append)
    run_stream(clf, S.ImageSource([tmp_path / "imgs"]), StreamOptions(smooth=0.2, **opts), on_result=smooth.append)
    assert [r.top_k[0].label for r in smooth] == ["red", "blue", "red", "green"]
    for r, s in zip(raw, smooth):
        np.testing.assert_allclose(s.probs, r.probs, atol=1e-6)
