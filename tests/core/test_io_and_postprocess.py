"""Atomic writes, table rendering and output post-processing."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv.io import atomic_path, write_json_atomic
from edgecv.postprocess import looks_like_probabilities, softmax, to_probabilities, top_k
from edgecv.table import format_table


def test_atomic_write_keeps_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "sub" / "model.bin"
    write_json_atomic(target, {"v": np.float32(1.5), "a": np.arange(2)})
    assert json.loads(target.read_text()) == {"v": 1.5, "a": [0, 1]}
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text())["v"] == 1.5
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin"]  # no temp left


def test_probabilities_are_not_softmaxed_twice() -> None:
    logits = np.array([[2.0, 1.0, 0.1]], np.float32)
    probs = softmax(logits)
    assert looks_like_probabilities(probs) and not looks_like_probabilities(logits)
    np.testing.assert_allclose(to_probabilities(probs), probs)
    np.testing.assert_allclose(to_probabilities(logits.reshape(1, 3, 1, 1)), probs, rtol=1e-6)


def test_top_k_order() -> None:
    idx, val = top_k(np.array([[0.1, 0.5, 0.2, 0.2], [0.9, 0.0, 0.05, 0.05]]), 2)
    assert idx.tolist() == [[1, 2], [0, 2]]
    assert val[0].tolist() == [0.5, 0.2]
    assert top_k(np.array([[0.3, 0.7]]), 5)[0].shape == (1, 2)


@pytest.mark.parametrize("classes", [3, 1000, 5000])
def test_top_k_both_paths_rank_like_a_stable_sort(classes: int) -> None:
    """Small and large class counts (one sort vs argpartition) give the same ranking as a full
    stable sort: value descending, ties to the lower class index, top-1 == argmax."""
    rng = np.random.default_rng(classes)
    probs = rng.integers(0, 7, (6, classes)).astype(np.float32)  # many ties, also at the k-th place
    probs /= probs.sum(axis=1, keepdims=True)
    for k in (1, 2, 5, classes):
        idx, val = top_k(probs, k)
        want = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        assert idx.tolist() == want.tolist()
        np.testing.assert_array_equal(val, np.take_along_axis(probs, want, axis=1))
        assert (idx[:, 0] == probs.argmax(axis=1)).all()


def test_format_table_aligns_numbers() -> None:
    text = format_table([{"name": "a", "params": 1234}, {"name": "bb", "params": 5}],
                        [("name", "Name"), ("params", "Params")])
    lines = text.splitlines()
    assert lines[0].startswith("Name") and lines[2].endswith("1,234") and lines[3].endswith("    5")
