"""``--mosaic out.mp4``: every stream's annotated frame tiled into one video.

The loop hands each result to :meth:`MosaicSink.write` (which only keeps a reference to the
stream's newest result) and calls :meth:`MosaicSink.end_tick` after each inference call; one
mosaic frame per tick is then drawn and encoded on the video writer's thread, at the measured
tick rate, so tiling never slows the inference loop. A stream without a new frame keeps its last
tile; one that was never seen is a dark tile with its id.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import cv2
import numpy as np

from edgecv.runtimes.streaming.outputs import VideoSink
from edgecv.runtimes.streaming.overlay import draw_overlay

MAX_WIDTH = 1920  # the mosaic's width at most; tiles shrink to fit


class MosaicSink:
    """A grid of ``ceil(sqrt(n))`` columns, one tile per stream id in ``ids`` order."""

    def __init__(self, path: str | os.PathLike[str], ids: Sequence[str], *, tile: tuple[int, int] | None = None,
                 fps: float | None = None) -> None:
        self.ids = list(ids)
        self.cols = max(1, math.ceil(math.sqrt(len(self.ids))))
        self.rows = max(1, math.ceil(len(self.ids) / self.cols))
        self._tile = tile  # (width, height); from the first frame when None
        self._latest: dict[str, Any] = {}
        self._fresh = False
        self.video = VideoSink(path, fps=fps)
        self.path = self.video.path

    def write(self, result: Any) -> None:
        self._latest[result.stream] = result
        self._fresh = True
        if self._tile is None:
            h, w = result.frame_image.shape[:2]
            tw = min(w, MAX_WIDTH // self.cols)
            self._tile = (tw - tw % 2, max(2, round(tw * h / w / 2) * 2))

    def end_tick(self) -> None:
        """One mosaic frame for this tick (the drawing happens on the writer thread)."""
        if not self._fresh or self._tile is None:
            return
        self._fresh = False
        snapshot = dict(self._latest)
        tile = self._tile
        self.video.write_render(lambda: self._compose(snapshot, tile))

    def _compose(self, latest: dict[str, Any], tile: tuple[int, int]) -> np.ndarray:
        tw, th = tile
        canvas = np.zeros((th * self.rows, tw * self.cols, 3), np.uint8)
        for i, stream in enumerate(self.ids):
            r, c = divmod(i, self.cols)
            cell = canvas[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
            result = latest.get(stream)
            if result is not None:
                image = cv2.resize(result.frame_image, (tw, th), interpolation=cv2.INTER_AREA)
                cell[:] = draw_overlay(image, result.top_k[:3], fps=result.fps, latency_ms=result.latency_ms)
            scale = max(0.35, th / 600)
            cv2.putText(cell, stream, (6, th - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), 1, cv2.LINE_AA)
        return canvas

    @property
    def frames(self) -> int:
        return self.video.frames

    def close(self) -> None:
        self.video.close()
