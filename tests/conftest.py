"""Fixtures shared across test packages (this is tests/conftest.py, not a root conftest)."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread: on a small, shared CPU two threads are several times slower,
    and one thread keeps training runs deterministic. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
