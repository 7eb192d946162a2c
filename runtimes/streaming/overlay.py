"""Drawing the top-k classes, FPS and latency onto a frame (OpenCV only)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from edgecv.runtimes.classifier import TopK

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_overlay(image: np.ndarray, top_k: Sequence[TopK], *, fps: float | None = None,
                 latency_ms: float | None = None, max_rows: int = 5) -> np.ndarray:
    """Return a copy of BGR ``image`` with a translucent panel listing ``top_k`` and the timing.

    Text size follows the frame height so the panel is legible from 240p to 1080p.
    """
    out = np.ascontiguousarray(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)).copy()
    h, w = out.shape[:2]
    scale = max(0.3, min(1.2, h / 600))
    thick = 1 if scale < 0.8 else 2
    line_h = int(26 * scale) + 4
    lines = [f"{t.label} {t.prob * 100:.1f}%" for t in list(top_k)[:max_rows]]
    status = []
    if fps is not None:
        status.append(f"{fps:.1f} FPS")
    if latency_ms is not None:
        status.append(f"{latency_ms:.1f} ms")
    if status:
        lines.append("  ".join(status))
    if not lines:
        return out
    width = max(cv2.getTextSize(t, _FONT, scale, thick)[0][0] for t in lines) + 12
    panel_h = line_h * len(lines) + 6
    x1, y1 = min(w, width), min(h, panel_h)
    roi = out[:y1, :x1]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken the panel area (60% black)
    for i, text in enumerate(lines):
        colour = (0, 255, 0) if i == 0 and top_k else (255, 255, 255)
        if status and i == len(lines) - 1:
            colour = (0, 215, 255)
        cv2.putText(out, text, (6, line_h * (i + 1)), _FONT, scale, colour, thick, cv2.LINE_AA)
    return out
