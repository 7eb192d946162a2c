"""Many streams, one model: one batch per tick across fake live cameras (fast, slow, one that
dies and comes back, one that dies forever), a local HTTP MJPEG stream served by this file,
video files mixed in, per-stream outputs checked frame by frame, per-stream smoothing, --stride
and --fps-limit on live sources, the ``Classifier.stream`` generator, and no spinning."""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.runtimes import load  # noqa: E402
from edgecv.runtimes.streaming import sources as S  # noqa: E402
from edgecv.runtimes.streaming.mosaic import MosaicSink  # noqa: E402
from edgecv.runtimes.streaming.multistream import (  # noqa: E402
    MultiStream,
    MultiStreamOptions,
    format_multi_summary,
    preprocess_parallel,
    run_multistream,
)
from edgecv.runtimes.streaming.outputs import JsonlSink, VideoSink  # noqa: E402
from edgecv.runtimes.streaming.stream import StreamOptions, run_stream  # noqa: E402
from edgecv.runtimes.streaming.stream_list import per_stream_path, stream_ids  # noqa: E402


class MjpegServer:
    """An HTTP MJPEG camera on 127.0.0.1: multipart/x-mixed-replace of ``cv2.imencode``'d solid
    ``colour`` frames at ``fps``; each connection ends after ``frames`` parts (None: never), so a
    reader sees the stream drop and must reconnect."""

    def __init__(self, colour: str = "green", *, fps: float = 30.0, frames: int | None = None,
                 size: tuple[int, int] = (64, 48)) -> None:
        self.jpg = cv2.imencode(".jpg", F.solid(colour, size[1], size[0]))[1].tobytes()
        self.fps, self.frames, self.connections = fps, frames, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                server.stream(self.wfile)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stream(self, out) -> None:
        n, due = 0, time.perf_counter()
        try:
            while self.frames is None or n < self.frames:
                out.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                          % (len(self.jpg), self.jpg))
                out.flush()
                n += 1
                due += 1 / self.fps
                time.sleep(max(0.0, due - time.perf_counter()))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return F.image_model(tmp_path_factory.mktemp("m") / "colour.onnx")


@pytest.fixture()
def clf(model):
    return load(model, provider="cpu", threads=1)


def fake(colour: str = "red", *, fps: float = 30.0, name: str | None = None, **kw) -> S.LiveSource:
    return S.LiveSource(lambda: S.FakeCapture(fps=fps, colour=F.BGR[colour]), name=name or f"fake {colour}", **kw)


def run_for(clf, sources, seconds: float, **kw):
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    got: list = []
    opts = MultiStreamOptions(handle_signals=False, **kw.pop("opts", {}))
    try:
        report = run_multistream(clf, sources, opts, stop=stop, on_result=got.append, **kw)
    finally:
        timer.cancel()
    return report, got


def by_stream(results) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in results:
        out.setdefault(r.stream, []).append(r)
    return out


def test_fast_and_slow_cameras_one_batch_per_tick(clf):
    """Three 30 fps cameras and a 5 fps one: the slow one never holds the others back, every
    stream keeps its own labels, and the ticks batch the streams together."""
    sources = [fake("red"), fake("green"), fake("blue"), fake("blue", fps=5, name="slow")]
    report, got = run_for(clf, sources, 2.0)
    streams = {s["stream"]: s for s in report.streams}
    assert list(streams) == ["fake_red", "fake_green", "fake_blue", "slow"]
    for sid in ("fake_red", "fake_green", "fake_blue"):
        assert streams[sid]["fps"] >= 24, format_multi_summary(report)  # ~30 on an idle machine
        assert streams[sid]["frame_age"]["p95_ms"] < 1000 / 30 + report.stages["inference"]["p95_ms"] + 60
    assert 6 <= streams["slow"]["frames"] <= 12 and streams["slow"]["fps"] >= 3
    assert {(r.stream, r.top_k[0].label) for r in got} == {("fake_red", "red"), ("fake_green", "green"),
                                                           ("fake_blue", "blue"), ("slow", "blue")}
    assert report.totals()["mean_batch"] > 2  # batched across streams, not one call per frame
    assert {k: len(v) for k, v in by_stream(got).items()} == {s: streams[s]["frames"] for s in streams}
    for rows in by_stream(got).values():
        assert [r.frame for r in rows] == sorted({r.frame for r in rows})  # newest frames, in order
    assert report.interrupted and not report.all_lost


def test_stream_that_drops_reconnects_and_one_that_never_comes_back(clf):
    opened = {"flaky": 0, "dead": 0}

    def flaky():
        opened["flaky"] += 1
        return S.FakeCapture(fps=30, fail_after=10 if opened["flaky"] == 1 else None, colour=F.BGR["green"])

    def dead():
        opened["dead"] += 1
        return S.FakeCapture(fps=30, fail_after=5 if opened["dead"] == 1 else 0, colour=F.BGR["blue"])

    events: list[str] = []
    sources = [fake("red", name="steady"), S.LiveSource(flaky, name="flaky", backoff_s=0.05),
               S.LiveSource(dead, name="dead", retries=2, backoff_s=0.02, max_backoff_s=0.05)]
    report, got = run_for(clf, sources, 1.8, on_event=events.append)
    streams = {s["stream"]: s for s in report.streams}
    assert streams["dead"]["state"] == "lost" and "dead: stream lost and not reopened after 2 attempts" in \
        streams["dead"]["error"]
    assert streams["dead"]["frames"] <= 5
    assert streams["flaky"]["reconnects"] == 1 and streams["flaky"]["frames"] >= 25
    assert streams["steady"]["frames"] >= 40 and streams["steady"]["state"] == "stopped"
    assert len(events) == 1 and events[0].startswith("dead: ") and "2 other stream(s) go on" in events[0]
    assert not report.all_lost and "dead: stream lost" in format_multi_summary(report)


def test_every_stream_lost_ends_the_run_with_one_line(clf):
    dead = [S.LiveSource(lambda: S.FakeCapture(fail_after=0), name=f"dead{i}", retries=1, backoff_s=0.01)
            for i in range(2)]
    t0 = time.perf_counter()
    report = run_multistream(clf, dead, MultiStreamOptions(handle_signals=False))
    assert time.perf_counter() - t0 < 5 and report.all_lost and not report.interrupted
    with pytest.raises(S.StreamLost) as err:
        report.raise_if_all_lost()
    message = str(err.value)
    assert "\n" not in message and message.startswith("all 2 streams lost: dead0: cannot open stream")


def test_mjpeg_streams_files_and_per_stream_outputs_frame_by_frame(clf, tmp_path):
    """Two local HTTP MJPEG cameras (one drops after 12 frames and comes back) and a video file,
    into shared JSON lines, one annotated video per stream and a mosaic; everything is checked
    against the per-stream summary frame by frame."""
    cams = [MjpegServer("green"), MjpegServer("red", frames=12)]
    video = F.write_video(tmp_path / "clip.mp4", F.video_colours(30), fps=20)
    sources = [S.open_stream(c.url, retries=5) for c in cams] + [S.open_stream(str(video))]
    ids = stream_ids(sources)
    assert ids[2] == "clip" and ids[0].endswith("_cam")
    saves = {i: VideoSink(per_stream_path(tmp_path / "out.mp4", i)) for i in ids}
    mosaic = MosaicSink(tmp_path / "wall.avi", ids)
    try:
        report, got = run_for(clf, sources, 3.0, sinks=[JsonlSink(tmp_path / "all.jsonl"), mosaic],
                              stream_sinks={i: [v] for i, v in saves.items()})
    finally:
        for cam in cams:
            cam.close()
    streams = {s["stream"]: s for s in report.streams}
    rows = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"stream", "source", "frame", "top_k", "latency_ms", "age_ms"}
    for sid in ids:
        mine = [r for r in rows if r["stream"] == sid]
        assert len(mine) == streams[sid]["frames"] == saves[sid].frames > 0
        assert [r["frame"] for r in mine] == sorted({r["frame"] for r in mine})
        cap = cv2.VideoCapture(str(per_stream_path(tmp_path / "out.mp4", sid)))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == streams[sid]["frames"], sid
    assert [r["top_k"][0]["label"] for r in rows if r["stream"] == "clip"] == F.video_colours(30)
    assert streams["clip"]["state"] == "ended" and [r["frame"] for r in rows if r["stream"] == "clip"] == \
        list(range(30))
    assert {r["top_k"][0]["label"] for r in rows if r["stream"] == ids[0]} == {"green"}
    assert streams[ids[0]]["frames"] >= 40
    assert streams[ids[1]]["reconnects"] >= 1 and cams[1].connections >= 2
    cap = cv2.VideoCapture(str(tmp_path / "wall.avi"))
    ok, frame = cap.read()
    assert ok and 0 < mosaic.frames <= report.totals()["inference_calls"] and frame.shape[1] >= 2 * 64


def test_smoothing_is_per_stream_never_across(clf, tmp_path):
    """Two videos batched together with --smooth: each stream's probabilities equal what the
    one-source loop computes for that video alone (a blend across streams would not)."""
    a = F.write_video(tmp_path / "a.avi", ["red"] * 6 + ["blue"] * 6, fourcc="MJPG")
    b = F.write_video(tmp_path / "b.avi", ["green"] * 12, fourcc="MJPG")
    report, got = run_for(clf, [S.VideoFileSource(a), S.VideoFileSource(b)], 30, opts={"smooth": 0.3})
    assert not report.interrupted and report.totals()["mean_batch"] > 1.5
    for path, sid in ((a, "a"), (b, "b")):
        alone: list = []
        run_stream(clf, S.VideoFileSource(path), StreamOptions(smooth=0.3, handle_signals=False),
                   on_result=alone.append)
        mine = by_stream(got)[sid]
        assert len(mine) == 12
        for m, ref in zip(mine, alone):
            np.testing.assert_allclose(m.probs, ref.probs, atol=1e-5)
    assert {r.top_k[0].label for r in by_stream(got)["b"]} == {"green"}


def test_file_mixed_with_live_reads_every_frame_as_fast_as_possible(clf, tmp_path):
    video = F.write_video(tmp_path / "v.mp4", F.video_colours(60), fps=10)  # 6 s of video
    report, got = run_for(clf, [S.VideoFileSource(video), fake("green", fps=30)], 6.0,
                          opts={"max_frames": 60})
    streams = {s["stream"]: s for s in report.streams}
    assert streams["v"]["frames"] == 60 and streams["v"]["state"] == "ended"
    assert streams["fake_green"]["frames"] <= 60 and streams["fake_green"]["frames"] >= 2
    assert [r.frame for r in by_stream(got)["v"]] == list(range(60))
    assert [r.top_k[0].label for r in by_stream(got)["v"]] == F.video_colours(60)
    assert by_stream(got)["v"][-1].fps > 12  # far faster than the file's 10 fps: no waiting for the camera


def test_realtime_file_and_fps_limit_pace_without_dropping(tmp_path):
    video = F.write_video(tmp_path / "v.mp4", F.video_colours(10), fps=20)
    for kwargs, seconds in (({"realtime": True}, 0.45), ({"fps_limit": 10.0}, 0.9)):
        t0 = time.perf_counter()
        with S.VideoFileSource(video, **kwargs) as src:
            frames = list(src)
        took = time.perf_counter() - t0
        assert [f.index for f in frames] == list(range(10))
        assert seconds <= took < seconds + 1.0, (kwargs, took)


@pytest.mark.parametrize("kwargs, rate", [({"stride": 3}, 10), ({"fps_limit": 10.0}, 10)])
def test_live_stride_and_fps_limit(kwargs, rate):
    src = fake("red", fps=30, **kwargs)
    try:
        time.sleep(0.05)
        got = []
        t_end = time.perf_counter() + 1.5
        while time.perf_counter() < t_end:
            frame = src.read(timeout=0.5)
            if frame is not None:
                got.append(frame)
    finally:
        src.close()
    seconds = (got[-1].captured_ns - got[0].captured_ns) / 1e9
    assert (len(got) - 1) / seconds == pytest.approx(rate, rel=0.2)
    assert src.skipped >= len(got) and src.dropped == 0
    if "stride" in kwargs:
        assert all(f.index % 3 == 0 for f in got)


def test_fixed_batch_model_is_looped_and_max_batch_one(tmp_path):
    fixed = load(F.image_model(tmp_path / "b1.onnx", batch=1), provider="cpu", threads=1)
    videos = [S.VideoFileSource(F.write_video(tmp_path / f"{c}.avi", [c] * 8, fourcc="MJPG")) for c in F.COLOURS]
    report, got = run_for(fixed, videos, 20)
    assert report.totals()["mean_batch"] > 1.5  # 3 frames per call, looped over the batch-1 graph
    assert {(r.stream, r.top_k[0].label) for r in got} == {(c, c) for c in F.COLOURS}
    videos = [S.VideoFileSource(F.write_video(tmp_path / f"{c}2.avi", [c] * 8, fourcc="MJPG")) for c in F.COLOURS]
    report, got = run_for(fixed, videos, 20, opts={"max_batch": 1})
    assert report.batch["max_ms"] == 1 and report.totals()["inference_calls"] == 24
    assert [len(v) for v in by_stream(got).values()] == [8, 8, 8]


def test_classifier_stream_generator_closes_captures(clf, tmp_path):
    video = F.write_video(tmp_path / "v.mp4", F.video_colours(100), fps=20)
    cams = [fake("red"), fake("blue")]
    gen = clf.stream([*cams, str(video)], top_k=1)
    seen = [next(gen) for _ in range(40)]
    assert {r.stream for r in seen} >= {"fake_red", "fake_blue", "v"}
    assert all(len(r.top_k) == 1 for r in seen)
    gen.close()
    assert not any(c._thread.is_alive() for c in cams)
    assert [r.top_k[0].label for r in seen if r.stream == "fake_red"][:1] == ["red"]


def test_batch_preprocessed_side_by_side_with_identical_pixels(clf, monkeypatch):
    """The frames of a tick are preprocessed one per pool thread: the batch is exactly what
    ``Classifier.preprocess`` makes of them, row for row, and the pool really shares the work."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(5)]
    workers: set[str] = set()
    one_image = clf.preprocess

    def tracked(images):
        workers.add(threading.current_thread().name)
        return one_image(images)

    monkeypatch.setattr(clf, "preprocess", tracked)
    with ThreadPoolExecutor(2, thread_name_prefix="edgecv-preprocess") as pool:
        batch = preprocess_parallel(clf, frames, pool)
    assert batch.dtype == np.float32 and batch.shape == (5, *clf.spec.input_shape(1)[1:])
    np.testing.assert_array_equal(batch, one_image(frames))
    assert len(workers) == 2 and all(w.startswith("edgecv-preprocess") for w in workers)
    monkeypatch.setattr(clf, "preprocess", one_image)
    assert preprocess_parallel(clf, frames[:1], None).shape[0] == 1


@pytest.mark.parametrize("threads, cores, overlap, workers", [(1, 2, True, 1), (2, 2, False, 2), (2, 8, True, 6),
                                                              (4, 4, False, 4)])
def test_preprocessing_uses_the_cores_inference_leaves(monkeypatch, threads, cores, overlap, workers):
    """Overlapped with inference, preprocessing gets the cores its threads leave; otherwise all."""
    from edgecv.runtimes.streaming import multistream as M

    import edgecv.hardware

    monkeypatch.setattr(M, "usable_cores", lambda: cores)
    monkeypatch.setattr(edgecv.hardware, "usable_cores", lambda: cores)
    fake_clf = type("C", (), {"threads": threads})()
    cams = [fake("red"), fake("blue")]
    try:
        engine = MultiStream(fake_clf, cams, MultiStreamOptions(), stop=threading.Event())
        assert (engine.overlap, engine.pre_workers) == (overlap, workers)
    finally:
        for cam in cams:
            cam.close()


def test_inference_on_an_accelerator_leaves_the_cpu_cores_to_preprocessing(clf, monkeypatch):
    """An engine on the CPU holds its threads' cores; on a GPU only the thread waiting for it."""
    from edgecv.hardware import usable_cores
    from edgecv.runtimes.streaming.stream_common import spare_cores

    assert clf.engine.host_cores == clf.threads == 1
    assert spare_cores(clf) == usable_cores() - 1
    monkeypatch.setattr(clf.engine, "threads", None)
    assert clf.engine.host_cores == usable_cores() and spare_cores(clf) == 0
    monkeypatch.setattr(clf.engine, "device", "cuda")
    assert clf.engine.host_cores == 1
    monkeypatch.setattr(clf.engine, "device", "openvino:CPU")
    assert clf.engine.host_cores == usable_cores()


def test_waiting_for_cameras_does_not_spin(clf):
    """Two 10 fps cameras and a tiny model: the process is idle between frames (no busy loop)."""
    t_cpu = time.process_time()
    report, _ = run_for(clf, [fake("red", fps=10), fake("blue", fps=10)], 1.5)
    cpu = time.process_time() - t_cpu
    assert report.frames >= 20 and cpu < 0.6, f"{cpu:.2f} s of CPU in 1.5 s for {report.frames} frames"


def test_stream_ids_and_save_paths():
    assert stream_ids(["camera 0", "camera 12", "rtsp://u:p@10.0.0.5:554/live/1?x=2", "http://cam/video.mjpg",
                       "/data/lobby.mp4", "/other/lobby.mp4", "rtsp://h/"]) == [
        "cam0", "cam12", "10.0.0.5_554_live_1", "cam_video", "lobby", "lobby-2", "h"]
    assert per_stream_path(Path("runs/out.mp4"), "cam1") == Path("runs/out_cam1.mp4")


@pytest.mark.slow
def test_soak_four_cameras_60s_no_build_up(clf):
    """60 s of four 30 fps cameras: frame age stable (last 10 s vs first 10 s) and RSS flat."""
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    marks: dict[str, list] = {"early": [], "late": []}
    rss = {}
    t0 = time.perf_counter()

    def on_result(r):
        t = time.perf_counter() - t0
        if 5 < t < 15:
            marks["early"].append(r.age_ms)
            rss.setdefault("start", proc.memory_info().rss)
        elif t > 50:
            marks["late"].append(r.age_ms)
            rss["end"] = proc.memory_info().rss

    sources = [fake(c, fps=30, name=f"cam{i}") for i, c in enumerate(["red", "green", "blue", "red"])]
    stop = threading.Event()
    threading.Timer(60, stop.set).start()
    report = run_multistream(clf, sources, MultiStreamOptions(handle_signals=False), stop=stop, on_result=on_result)
    early, late = np.percentile(marks["early"], 95), np.percentile(marks["late"], 95)
    assert late < max(2 * early, early + 20), (early, late)
    assert (rss["end"] - rss["start"]) / 2**20 < 16
    assert all(s["fps"] > 25 for s in report.streams), format_multi_summary(report)
