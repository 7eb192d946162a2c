"""Frame sources: folders, video files (order, stride, truncation), live capture with newest-frame
semantics and bounded reconnects."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import InputError  # noqa: E402
from edgecv.runtimes.streaming import sources as S  # noqa: E402


def _colour(frame: np.ndarray) -> str:
    b, g, r = frame.reshape(-1, 3).mean(0)
    return F.COLOURS[int(np.argmax([r, g, b]))]


def test_image_source_recursive_and_unreadable_skipped(tmp_path):
    F.write_images(tmp_path, ["red", "green", "blue"])
    (tmp_path / "sub" / "broken.png").write_bytes(b"\x89PNG truncated")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    with S.ImageSource([tmp_path]) as src:
        frames = list(src)
    assert [Path(f.source).name for f in frames] == ["000_red.png", "002_blue.png", "001_green.png"]
    assert [_colour(f.image) for f in frames] == ["red", "blue", "green"]
    assert len(src.unreadable) == 1 and "broken.png" in src.unreadable[0]


def test_image_source_errors(tmp_path):
    with pytest.raises(InputError, match="file or folder not found"):
        S.ImageSource([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        S.ImageSource([tmp_path / "empty"])


@pytest.mark.parametrize("stride", [1, 3])
def test_video_file_in_order_with_stride(tmp_path, stride):
    colours = F.video_colours(30)
    path = F.write_video(tmp_path / "v.mp4", colours, fps=25)
    with S.VideoFileSource(path, stride=stride) as src:
        frames = list(src)
    assert src.fps == pytest.approx(25)
    assert [f.index for f in frames] == list(range(0, 30, stride))
    assert [_colour(f.image) for f in frames] == colours[::stride]


def test_truncated_video_ends_cleanly(tmp_path):
    path = F.write_video(tmp_path / "v.avi", F.video_colours(40), fourcc="MJPG")
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with S.VideoFileSource(cut) as src:
        frames = list(src)
    assert 5 <= len(frames) < 40
    assert [f.index for f in frames] == list(range(len(frames)))


def test_video_errors(tmp_path):
    with pytest.raises(InputError, match="video file not found"):
        S.VideoFileSource(tmp_path / "none.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"garbage" * 10)
    with pytest.raises(InputError, match="cannot open video"):
        S.VideoFileSource(junk)


def test_live_source_keeps_only_newest_frame():
    src = S.LiveSource(lambda: S.FakeCapture(fps=30), name="fake")
    try:
        taken = []
        for _ in range(6):
            time.sleep(0.1)  # a consumer 3x slower than the camera
            frame = src.read(timeout=1.0)
            age_ms = (time.perf_counter_ns() - frame.captured_ns) / 1e6
            taken.append((int.from_bytes(frame.image[0, :4, 0].tobytes(), "little"), age_ms))
    finally:
        src.close()
    ids = [i for i, _ in taken]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[-1] - ids[0] >= 10  # frames were skipped, not queued
    assert sorted(age for _, age in taken)[-2] < 1000 / 30 + 40  # ~one frame interval old (+ slack)
    assert src.dropped >= 10


def test_camera_that_does_not_open_is_a_clear_error(monkeypatch):
    class Closed:
        def isOpened(self):  # noqa: N802
            return False

        def release(self):
            pass

        def set(self, *a):
            return True

    monkeypatch.setattr(S.cv2, "VideoCapture", lambda *a, **k: Closed())
    with pytest.raises(InputError, match=r"camera 7: cannot open"):
        S.open_camera(7)
    with pytest.raises(InputError, match="cannot open"):
        S.open_source(camera=3)


def test_stream_reconnects_after_a_drop():
    opened = []

    def opener():
        opened.append(1)
        return S.FakeCapture(fps=200, fail_after=5 if len(opened) == 1 else None)

    src = S.LiveSource(opener, name="flaky", backoff_s=0.01)
    try:
        got = [src.read(timeout=2.0) for _ in range(12)]
    finally:
        src.close()
    assert all(f is not None for f in got)
    assert src.reconnects == 1 and len(opened) == 2


def test_stream_gives_up_after_bounded_retries():
    calls = []

    def opener():
        calls.append(time.perf_counter())
        return S.FakeCapture(fps=200, fail_after=3) if len(calls) == 1 else S.FakeCapture(fail_after=0)

    src = S.LiveSource(opener, name="rtsp://cam", retries=3, backoff_s=0.01, max_backoff_s=0.02)
    t0 = time.perf_counter()
    with pytest.raises(S.StreamLost, match=r"rtsp://cam: stream lost .* after 3 attempts"):
        for _ in src:
            pass
    src.close()
    assert len(calls) == 4 and time.perf_counter() - t0 < 5


def test_open_source_dispatch(tmp_path):
    video = F.write_video(tmp_path / "v.mp4", F.video_colours(3))
    img = F.write_images(tmp_path / "imgs", ["red"], nested=False)[0]
    with S.open_source([video]) as src:
        assert isinstance(src, S.VideoFileSource)
    with S.open_source([img, tmp_path / "imgs"]) as src:
        assert isinstance(src, S.ImageSource) and len(src) == 2
    with pytest.raises(InputError, match="no input"):
        S.open_source([])
    assert S.is_url("rtsp://10.0.0.1/x") and S.is_url("http://h/x.mjpg") and not S.is_url("a.mp4")


def test_rate_gate_is_a_schedule_not_a_minimum_gap():
    gate = S.RateGate(20.0)
    frames = [int(i * 1e9 / 30) for i in range(300)]  # 10 s of a 30 fps camera
    admitted = [t for t in frames if gate.admit(t)]
    assert len(admitted) == pytest.approx(200, abs=2)  # a 50 ms minimum gap would give 150
    assert min(b - a for a, b in zip(admitted, admitted[1:])) >= 1e9 / 30 - 1


def test_open_stream_dispatch(tmp_path, monkeypatch):
    video = F.write_video(tmp_path / "v.mp4", F.video_colours(3))
    monkeypatch.setattr(S.cv2, "VideoCapture", lambda *a, **k: S.FakeCapture(fps=50))
    for spec, kind in ((0, S.LiveSource), ("2", S.LiveSource), (str(video), S.VideoFileSource)):
        with S.open_stream(spec) as src:
            assert isinstance(src, kind)
    with S.open_stream("3") as cam:
        assert cam.name == "camera 3" and cam.read(timeout=2.0) is not None
    img = F.write_images(tmp_path / "imgs", ["red"], nested=False)[0]
    with pytest.raises(InputError, match="images and folders are not streams"):
        S.open_stream(str(img))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a video file"):
        S.open_stream(str(tmp_path / "notes.txt"))


def test_live_source_can_open_on_its_capture_thread():
    """Several streams start at once: a slow or dead first open happens on the capture thread."""
    def slow():
        time.sleep(0.3)
        return S.FakeCapture(fps=100)

    t0 = time.perf_counter()
    src = S.LiveSource(slow, name="slow", open_in_thread=True, first_open_retries=True)
    assert time.perf_counter() - t0 < 0.1 and src.poll() is None
    try:
        assert src.read(timeout=2.0) is not None and src.fps == 100
    finally:
        src.close()
    def closed():
        cap = S.FakeCapture()
        cap.release()  # isOpened() -> False: the device does not open
        return cap

    dead = S.LiveSource(closed, name="dead", retries=1, backoff_s=0.01, open_in_thread=True, first_open_retries=True)
    time.sleep(0.3)
    with pytest.raises(S.StreamLost, match="dead: cannot open stream after 2 attempts"):
        dead.poll()
    dead.close()


def test_ordered_source_can_be_polled_in_order(tmp_path):
    src = S.VideoFileSource(F.write_video(tmp_path / "v.mp4", F.video_colours(12)))
    got, t_end = [], time.perf_counter() + 5
    while not src.exhausted and time.perf_counter() < t_end:
        frame = src.poll()
        if frame is not None:
            got.append(frame.index)
        else:
            time.sleep(0.001)
    src.close()
    assert got == list(range(12)) and src.exhausted
