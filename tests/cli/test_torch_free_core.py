"""The edge-device install has no torch: the core, the CLI group and the ONNX side of `inspect`
must work with ``torch`` blocked (``sys.modules['torch'] = None`` makes any import of it fail)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SCRIPT = textwrap.dedent(
    """
    import io, json, sys, contextlib
    sys.modules["torch"] = None  # any "import torch" now raises ImportError
    import edgecv, edgecv.runtimes
    from edgecv.cli import main

    def call(*args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code or 0
        return {"args": list(args), "code": code, "out": out.getvalue(), "err": err.getvalue()}

    model, image, montage = sys.argv[1:4]
    results = [
        call("--help"),
        call("--version"),
        call("inspect", "--help"),
        call("inspect", model, "--json"),
        call("inspect", model, "--layers"),
        call("inspect", model, "--activations", image, "--layer", "relu", "-o", montage),
        call("inspect", "mobilenet_v2"),
    ]
    results.append({"torch_loaded": sys.modules.get("torch") is not None})
    print(json.dumps(results))
    """
)


def _model(path: Path) -> Path:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((6, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 6])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def test_core_cli_and_onnx_inspect_work_without_torch(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx")
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    montage = tmp_path / "maps.png"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(image), str(montage)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    *calls, flag = json.loads(proc.stdout)
    assert flag == {"torch_loaded": False}
    by_first = {" ".join(c["args"][:2]): c for c in calls}
    for call in calls[:-1]:
        assert call["code"] == 0, call
    assert "inspect" in by_first["--help"]["out"]
    assert by_first["--version"]["out"].startswith("edgecv")
    assert "--activations" in by_first["inspect --help"]["out"]
    stats = json.loads(calls[3]["out"])
    assert stats["total_params"] == 6 * 27 and stats["total_macs"] == 6 * 256 * 27
    assert "relu" in calls[4]["out"]
    assert cv2.imread(str(montage)) is not None
    # a registry name needs torch: a one-line hint naming the extra, exit 1
    needs_torch = calls[-1]
    assert needs_torch["code"] == 1 and "edgecv[train]" in needs_torch["err"]
    assert needs_torch["err"].strip().count("\n") == 0
