"""Overlay drawing, the attention view and argument checks of the stream loop."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import InputError  # noqa: E402
from edgecv.runtimes import TopK, load  # noqa: E402
from edgecv.runtimes.attention_view import attention_matrix, attention_rows, format_attention  # noqa: E402
from edgecv.runtimes.streaming.overlay import draw_overlay  # noqa: E402
from edgecv.runtimes.streaming.sources import ImageSource  # noqa: E402
from edgecv.runtimes.streaming.stream import StreamOptions, run_stream  # noqa: E402


@pytest.mark.parametrize("shape", [(240, 320, 3), (1080, 1920, 3), (60, 80)])
def test_overlay_draws_panel_without_touching_input(shape):
    image = np.full(shape, 128, np.uint8)
    out = draw_overlay(image, [TopK("cat", 3, 0.9), TopK("dog", 1, 0.05)], fps=29.7, latency_ms=12.5)
    assert out.shape[:2] == shape[:2] and out.ndim == 3
    assert (image == 128).all()  # a copy, the frame is not modified in place
    h, w = shape[:2]
    assert (out[: h // 8, : w // 8] != 128).any()  # panel in the top-left corner
    assert (out[-5:, -5:] == 128).all()  # rest untouched


def _toy_attention() -> np.ndarray:
    # 2 layers, 2 heads, T = 4 (last position is padding); last layer: token 2 attends to token 0
    a = np.full((2, 2, 4, 4), 0.25, np.float32)
    a[1, :, 2] = [0.7, 0.1, 0.1, 0.1]
    return a


def test_attention_matrix_uses_last_layer_and_drops_padding():
    m = attention_matrix(_toy_attention(), 3)
    assert m.shape == (3, 3)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)
    assert m[2, 0] == pytest.approx(0.7 / 0.9, rel=1e-5)
    rows = attention_rows(["the", "cat", "it"], _toy_attention(), top=2)
    assert rows[2]["token"] == "it" and rows[2]["attends_to"][0]["token"] == "the"
    first_layer = attention_matrix(_toy_attention(), 3, layer=0)
    np.testing.assert_allclose(first_layer, 1 / 3, atol=1e-6)


def test_format_attention_text():
    text = format_attention(["the", "cat", "it"], _toy_attention())
    assert "layer 2 of 2, averaged over heads" in text
    assert "it   -> the 0.78" in text


def test_attention_errors():
    with pytest.raises(InputError, match="expected \\(layers, heads, T, T\\)"):
        attention_matrix(np.zeros((2, 3, 4)), 2)
    with pytest.raises(InputError, match="has 2 layer"):
        attention_matrix(_toy_attention(), 2, layer=5)


def test_smooth_alpha_checked(tmp_path):
    clf = load(F.image_model(tmp_path / "m.onnx"), provider="cpu", threads=1)
    F.write_images(tmp_path / "imgs", ["red"], nested=False)
    with pytest.raises(InputError, match="smooth 1.5: expected ALPHA in \\(0, 1\\]"):
        run_stream(clf, ImageSource([tmp_path / "imgs"]), StreamOptions(smooth=1.5, handle_signals=False))
