"""``save_onnx`` with external data: the write order under a simulated crash at every step.

A model and its external data file are two files; no crash between their writes may leave a
model that reads another save's weights. Each save below is recognisable: its metadata says
which save it was, and every weight equals that number.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.exporters import onnx_export
from edgecv.exporters.onnx_export import file_size, model_files, save_onnx

THRESHOLD = 1024  # bytes: the 16 KiB weight below goes to external data


def _model(save: int) -> onnx.ModelProto:
    """y = x + W with W (4096,) all equal to ``save``; metadata ``save`` says the same."""
    weight = numpy_helper.from_array(np.full(4096, float(save), np.float32), "W")
    graph = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="save", value=str(save))
    return model


def _small_model(save: int) -> onnx.ModelProto:
    """The same graph with a weight too small for external data."""
    model = _model(save)
    del model.graph.initializer[:]
    model.graph.initializer.append(numpy_helper.from_array(np.full(4096, float(save), np.float32)[:4], "W"))
    return model


def _which_save(path: Path) -> int:
    """The save the model on disk comes from; fails if its weights belong to another save."""
    model = onnx.load(str(path))  # loads the external data it refers to
    save = int({p.key: p.value for p in model.metadata_props}["save"])
    weight = numpy_helper.to_array(model.graph.initializer[0])
    assert np.all(weight == save), f"model of save {save} paired with weights {np.unique(weight)}"
    return save


class _Crash(Exception):
    pass


def _crash_at(monkeypatch: pytest.MonkeyPatch, name: str, call: int) -> list[int]:
    """Make the ``call``-th call of os.<name> (1-based) raise, as a power cut would stop there."""
    real = getattr(os, name)
    calls: list[int] = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise _Crash(f"crash at {name} #{call}")
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_export.os, name, dying)
    return calls


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str, save) -> int:
    calls = _crash_at(monkeypatch, name, call=10**6)
    save()
    monkeypatch.undo()
    return len(calls)


def test_external_data_file_is_named_after_its_content(tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    save_onnx(_model(1), dest, threshold=THRESHOLD)
    data = [p.name for p in tmp_path.iterdir() if p.name.endswith(".data")]
    assert len(data) == 1 and data[0].startswith("model.onnx.") and len(data[0]) == len("model.onnx.") + 12 + 5
    assert model_files(dest) == [dest, tmp_path / data[0]]
    assert file_size(dest) == dest.stat().st_size + (tmp_path / data[0]).stat().st_size
    assert dest.stat().st_size < 1000  # the weights are not in the protobuf
    save_onnx(_model(2), dest, threshold=THRESHOLD)
    assert _which_save(dest) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in model_files(dest))  # old file gone
    save_onnx(_small_model(3), dest, threshold=THRESHOLD)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"] and model_files(dest) == [dest]


@pytest.mark.parametrize("first, second", [(_model, _model), (_small_model, _model), (_model, _small_model)])
def test_a_crash_at_any_rename_leaves_one_complete_save(first, second, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    save_onnx(first(1), dest, threshold=THRESHOLD)
    steps = _count_calls(monkeypatch, "replace", lambda: save_onnx(second(2), tmp_path / "probe.onnx",
                                                                   threshold=THRESHOLD))
    assert steps >= 1
    seen = set()
    for call in range(1, steps + 1):
        save_onnx(first(1), dest, threshold=THRESHOLD)  # start from a complete first save
        with monkeypatch.context() as patch:
            _crash_at(patch, "replace", call)
            with pytest.raises(_Crash):
                save_onnx(second(2), dest, threshold=THRESHOLD)
        seen.add(_which_save(dest))  # the old pair or the new pair, never a mix
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left
    assert seen == {1}  # the model is renamed last: every earlier crash keeps the old save
    save_onnx(second(2), dest, threshold=THRESHOLD)  # the next save after a crash is clean
    assert _which_save(dest) == 2
    assert {p.name for p in tmp_path.iterdir()} == {f.name for f in model_files(dest)} | {"probe.onnx"} | {
        f.name for f in model_files(tmp_path / "probe.onnx")}


def test_a_crash_while_removing_the_old_data_keeps_the_new_save(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    save_onnx(_model(1), dest, threshold=THRESHOLD)
    with monkeypatch.context() as patch:
        real_unlink = Path.unlink

        def dying_unlink(self, *args, **kwargs):
            if self.name.endswith(".data"):
                raise _Crash("crash while removing the old data file")
            return real_unlink(self, *args, **kwargs)

        patch.setattr(Path, "unlink", dying_unlink)
        with pytest.raises(_Crash):
            save_onnx(_model(2), dest, threshold=THRESHOLD)
    assert _which_save(dest) == 2
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".data")]) == 2  # a leftover ...
    assert len(model_files(dest)) == 2  # ... that is not counted as this model's
    save_onnx(_model(3), dest, threshold=THRESHOLD)
    assert _which_save(dest) == 3 and len([p for p in tmp_path.iterdir() if p.name.endswith(".data")]) == 1


def test_a_legacy_data_file_is_replaced(tmp_path: Path) -> None:
    """Files written by the older fixed-name scheme (``model.onnx.data``) are cleaned up too."""
    from onnx import external_data_helper as ext

    dest = tmp_path / "model.onnx"
    old = _model(1)
    ext.convert_model_to_external_data(old, all_tensors_to_one_file=True, location="model.onnx.data",
                                       size_threshold=1024)
    onnx.save_model(old, str(dest))
    assert model_files(dest) == [dest, tmp_path / "model.onnx.data"]
    save_onnx(_model(2), dest, threshold=THRESHOLD)
    assert _which_save(dest) == 2 and not (tmp_path / "model.onnx.data").exists()
