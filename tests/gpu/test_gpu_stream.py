"""The stream loop's FPS on a generated video on CUDA, with and without I/O binding."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402

pytestmark = pytest.mark.gpu


def test_stream_fps_with_and_without_io_binding(zoo, tmp_path):
    from edgecv.demo.synthetic import make_shapes_video
    from edgecv.runtimes.classifier import load
    from edgecv.runtimes.engines.base import EngineOptions
    from edgecv.runtimes.streaming.stream import run_pipeline

    video = make_shapes_video(tmp_path / "shapes.mp4", seconds=10.0, fps=30, size=(640, 480))
    rows = []
    for binding in (False, True, False, True):  # interleaved: a warming GPU favours neither
        clf = load(zoo["mobilenet_v2"]["fp32"], engine=EngineOptions(provider="cuda", io_binding=binding))
        assert clf.engine.report()["io_binding"] is binding
        rep = run_pipeline(clf, str(video))
        rows.append({"binding": "on" if binding else "off", "frames": rep.frames, "fps": rep.fps,
                     "infer": rep.stages.get("inference", {}).get("p50_ms")})
    assert all(r["frames"] == rows[0]["frames"] > 0 for r in rows)
    fps = {b: max(r["fps"] for r in rows if r["binding"] == b) for b in ("off", "on")}
    _gpu.write_section("50-stream", "Stream loop FPS (mobilenet_v2, CUDA, 640x480 video)", "\n".join([
        _gpu.table(rows, [("binding", "I/O binding"), ("frames", "frames"), ("fps", "FPS"),
                          ("infer", "inference p50 ms")]), "",
        f"Best of two runs: {fps['on']:.1f} FPS with I/O binding, {fps['off']:.1f} without "
        f"({fps['on'] / fps['off']:.2f}x)."]))
