"""Fixtures of the GPU checks: a throw-away TensorRT cache, a tiny torch-free model to ask for
providers with, and the model zoo exported once per session (only where CUDA really runs)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def gpu_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """TensorRT engines of this run go to a fresh folder: the check must see a build and a reuse,
    and must not leave engines in the user's cache."""
    folder = tmp_path_factory.mktemp("edgecv-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGECV_CACHE_DIR", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _gpu.tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> dict[str, dict[str, Path]]:
    """mobilenet_v2, mobilenet_v3_small, squeezenet1_1 (fp32 + fp16 exports, random weights);
    skipped before any export where CUDA does not really run or torch is missing."""
    _gpu.require(_gpu.CUDA, tiny)
    pytest.importorskip("torch", reason="torch is not installed (pip install '.[train]'): no model export")
    return _gpu.export_zoo(tmp_path_factory.mktemp("zoo"))
