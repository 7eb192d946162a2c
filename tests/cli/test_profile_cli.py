"""``edgecv profile`` through click's CliRunner and once through a real, torch-free subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgecv.cli import cli

sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
import _infer_fixtures as F  # noqa: E402

RNG = np.random.default_rng(0)
FAST = ["--provider", "cpu", "--threads", "1", "--warmup", "1", "--runs", "5", "--peak", "off"]


def conv_model(path, *, batch="N", hw=(16, 16)) -> str:
    """(B, 3, H, W) -> Conv 3x3 (8) -> ReLU -> GAP -> (B, 8) @ (8, 4) -> logits (B, 4)."""
    w = numpy_helper.from_array(RNG.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(RNG.standard_normal((8, 4)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, *hw])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture()
def models(tmp_path):
    return {"a": conv_model(tmp_path / "a.onnx"), "b": conv_model(tmp_path / "b.onnx"),
            "fixed": conv_model(tmp_path / "fixed.onnx", batch=1),
            "dyn": conv_model(tmp_path / "dyn.onnx", hw=("H", "W"))}


def invoke(*args: str):
    return CliRunner().invoke(cli, ["profile", *args])


def test_json_to_stdout_has_the_documented_fields(models) -> None:
    res = invoke(models["a"], *FAST, "--batch", "1,2", "--json", "-")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert isinstance(rows, list) and len(rows) == 2
    for key in ("model", "provider", "batch", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs",
                "throughput", "runtime", "create_ms", "first_run_ms", "environment"):
        assert key in rows[0], key
    assert [r["batch"] for r in rows] == [1, 2] and all(r["runs"] == 5 for r in rows)
    assert rows[0]["runtime"] == "onnxruntime" and rows[0]["provider"] == "cpu"
    assert rows[0]["environment"]["providers_used"] == ["CPUExecutionProvider"]


def test_side_by_side_table_files_and_ratios(models, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out = {k: str(tmp_path / f"r.{k}") for k in ("csv", "md", "png", "json")}
    res = invoke(models["a"], models["b"], *FAST, "--csv", out["csv"], "--markdown", out["md"],
                 "--plot", out["png"], "--json", out["json"], "--opencv")
    assert res.exit_code == 0, res.output
    assert "CPU:" in res.output and "vs first" in res.output and "p99 ms" in res.output
    assert "b.onnx (onnxruntime) is" in res.output and "than a.onnx (onnxruntime)" in res.output
    rows = json.loads(open(out["json"]).read())
    assert [(r["model"], r["runtime"]) for r in rows] == [
        ("a.onnx", "onnxruntime"), ("b.onnx", "onnxruntime"), ("a.onnx", "opencv"), ("b.onnx", "opencv")]
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(rows[0]["p50_ms"] / rows[1]["p50_ms"])
    assert rows[3]["speedup"] == pytest.approx(rows[0]["p50_ms"] / rows[3]["p50_ms"])
    assert open(out["png"], "rb").read(4) == b"\x89PNG"
    assert "| model |" in open(out["md"]).read()
    assert open(out["csv"]).readline().startswith("model,runtime,provider")


def test_ops_table_and_json(models) -> None:
    res = invoke(models["a"], *FAST, "--ops", "--top", "2")
    assert res.exit_code == 0, res.output
    assert "where the time goes" in res.output and "Conv" in res.output and "top 2 nodes" in res.output
    res = invoke(models["a"], *FAST, "--batch", "1,2", "--ops", "--top", "2", "--json", "-")
    rows = json.loads(res.stdout)
    assert [len(r["ops"]["nodes"]) for r in rows] == [2, 2]
    assert {o["op_type"] for o in rows[0]["ops"]["ops"]} >= {"Conv"}


def test_roofline_columns_with_measured_peak(models) -> None:
    res = invoke(models["a"], "--provider", "cpu", "--threads", "1", "--runs", "5", "--json", "-")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["macs"] == 8 * 16 * 16 * 27 + 8 * 4
    assert row["peak_gflops"] > 0 and row["gflops"] > 0
    assert row["pct_peak"] == pytest.approx(100 * row["gflops"] / row["peak_gflops"])


def test_duration_mode(models) -> None:
    res = invoke(models["a"], "--provider", "cpu", "--threads", "1", "--duration", "0.05", "--peak", "off",
                 "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["runs"] > 5


def test_assert_p99(models) -> None:
    ok = invoke(models["a"], *FAST, "--assert-p99-ms", "10000")
    assert ok.exit_code == 0, ok.output
    bad = invoke(models["a"], *FAST, "--assert-p99-ms", "0.000001")
    assert bad.exit_code == 1
    assert "FAIL: a.onnx (onnxruntime, cpu, batch 1, threads 1): p99" in bad.output


@pytest.mark.parametrize("case, extra, message", [
    ("notonnx", [], "not a valid ONNX model"),
    ("missing", [], "file not found"),
    ("dyn", [], "pass --shape input=1,3,224,224"),
    ("fixed", ["--batch", "4"], "fixed batch size of 1"),
])
def test_bad_input_is_one_line_error(models, tmp_path, case, extra, message) -> None:
    paths = dict(models)
    (tmp_path / "x.onnx").write_text("hello, not protobuf")
    paths.update(notonnx=str(tmp_path / "x.onnx"), missing=str(tmp_path / "nope.onnx"))
    res = invoke(paths[case], *FAST, *extra)
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output
    assert "Traceback" not in res.output


def test_unavailable_provider_is_skipped_and_cpu_still_measured(models) -> None:
    res = invoke(models["a"], "--provider", "cpu,cuda", "--threads", "1", "--warmup", "1", "--runs", "4",
                 "--peak", "off", "--json", "-")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    cpu = rows[0]
    assert (cpu["model"], cpu["runtime"], cpu["provider"], cpu["batch"], cpu["threads"], cpu["runs"]) == (
        "a.onnx", "onnxruntime", "cpu", 1, 1, 4)
    assert cpu["providers"] == ["CPUExecutionProvider"] and 0 < cpu["p50_ms"] <= cpu["p99_ms"]
    if len(rows) == 2:  # CUDA is usable here
        assert rows[1]["provider"] == "cuda" and rows[1]["runs"] == 4
        return
    assert len(rows) == 1 and "skipped: a.onnx cuda batch 1 threads 1: provider 'cuda' is not usable" in res.stderr
    only = invoke(models["a"], "--provider", "cuda", "--runs", "2", "--peak", "off")
    assert only.exit_code == 1
    errors = [ln for ln in only.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: a.onnx: provider 'cuda' is not usable"), only.stderr


def test_seq_len_sweep_keeps_what_runs_and_names_what_was_skipped(tmp_path) -> None:
    model = str(F.position_text_model(tmp_path / "reviews.onnx", max_len=8))
    out = tmp_path / "r.json"
    res = invoke(model, *FAST, "--seq-len", "4,8,16", "--json", str(out))
    assert res.exit_code == 0, res.output
    assert [(r["seq_len"], r["runs"]) for r in json.loads(out.read_text())] == [(4, 5), (8, 5)]
    assert ("skipped: reviews.onnx cpu batch 1 threads 1 seq-len 16: sequence length 16 is above the "
            "model's maximum of 8 tokens (edgecv.max_seq_len)") in res.output
    foreign = str(F.position_text_model(tmp_path / "foreign.onnx", max_len=8, contract=False))
    res = invoke(foreign, *FAST, "--seq-len", "16,4", "--json", "-")
    assert res.exit_code == 0, res.output
    assert [r["seq_len"] for r in json.loads(res.stdout)] == [4]
    assert "skipped: foreign.onnx cpu batch 1 threads 1 seq-len 16: ONNX Runtime cannot run" in res.stderr


@pytest.mark.parametrize("args", [["--batch", "x"], ["--batch", "0"], ["--provider", "tpu"],
                                  ["--runs", "3", "--duration", "1"], ["--top", "0"]])
def test_usage_errors_exit_2(models, args) -> None:
    res = invoke(models["a"], *args)
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_plot_without_matplotlib_names_the_extra(models, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = invoke(models["a"], *FAST, "--plot", str(tmp_path / "x.png"))
    assert res.exit_code == 1 and "pip install 'edgecv[plot]'" in res.output


def test_pipeline_stage_timing(models, tmp_path) -> None:
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(12):
        writer.write(np.full((24, 32, 3), i * 20, np.uint8))
    writer.release()
    res = invoke(models["a"], *FAST, "--pipeline", video, "--json", "-")
    assert res.exit_code == 0, res.output
    pipe = json.loads(res.stdout)[0]["pipeline"]
    assert pipe["frames"] == 12 and pipe["fps"] > 0
    assert [s["stage"] for s in pipe["stages"]] == ["decode", "preprocess", "inference", "postprocess"]
    missing = invoke(models["a"], *FAST, "--pipeline", str(tmp_path / "none.mp4"))
    assert missing.exit_code == 1 and "video file not found" in missing.output


def test_torch_free_subprocess(models) -> None:
    """The real console path with torch blocked: profile must not need it, and --torch must say so."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgecv.cli import main\n"
            "sys.argv = ['edgecv'] + sys.argv[1:]\n"
            "main()\n")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run([sys.executable, "-c", code, "profile", models["a"], *FAST, "--json", "-"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["runs"] == 5
    bad = subprocess.run([sys.executable, "-c", code, "profile", models["a"], *FAST, "--torch", "x.pt"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == (
        "Error: torch is not installed; --torch needs it: pip install 'edgecv[train]'")


def test_torch_baseline_from_checkpoint(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from edgecv.contract import ModelContract, embed_contract
    from edgecv.exporters.onnx_export import export_onnx
    from edgecv.models import create_model
    from edgecv.models.checkpoint import save_checkpoint
    from edgecv.preprocess import default_spec

    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=3)
    ckpt = save_checkpoint({"model": "simple_cnn", "model_kwargs": {"num_classes": 3}, "task": "image",
                            "state_dict": model.state_dict(), "classes": ["a", "b", "c"]}, tmp_path / "best.pt")
    path = export_onnx(model, tmp_path / "m.onnx", task="image", input_shape=(1, 28, 28))
    proto = onnx.load(str(path))
    embed_contract(proto, ModelContract(task="image", labels=["a", "b", "c"], architecture="simple_cnn",
                                        model_kwargs={"num_classes": 3},
                                        preprocess=default_spec(size=28, channels=1)))
    onnx.save(proto, str(path))
    res = invoke(str(path), *FAST, "--torch", str(ckpt), "--json", "-")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["runtime"] for r in rows] == ["onnxruntime", "torch"]
    assert rows[1]["model"] == "best.pt" and rows[1]["threads"] == 1 and rows[1]["runs"] == 5
    assert rows[1]["speedup"] == pytest.approx(rows[0]["p50_ms"] / rows[1]["p50_ms"])


def test_quantized_model_gets_no_percent_of_float_peak(models, tmp_path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = str(tmp_path / "a.int8.onnx")
    quantize_dynamic(models["a"], int8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    res = invoke(models["a"], int8, "--provider", "cpu", "--threads", "1", "--runs", "5", "--json", "-")
    assert res.exit_code == 0, res.output
    fp32, q = json.loads(res.stdout)
    assert fp32["pct_peak"] is not None and q["pct_peak"] is None and q["model"] == "a.int8.onnx"
    assert "not a like-for-like ratio" in res.stderr


def test_default_table_fits_120_columns_and_wide_has_every_column(tmp_path) -> None:
    """Two models x two batches: nothing in the default output is wider than a 120-column
    terminal; --wide brings back the columns the default leaves to the files."""
    long_a = conv_model(tmp_path / "squeezenet1_1_imagenet_finetuned_fp32.onnx")
    long_b = conv_model(tmp_path / "squeezenet1_1_imagenet_finetuned_int8_qdq.onnx")
    res = invoke(long_a, long_b, *FAST, "--batch", "1,2")
    assert res.exit_code == 0, res.output
    too_long = [line for line in res.output.splitlines() if len(line) > 120]
    assert not too_long, too_long
    assert "p50 ms" in res.output and "p99 ms" in res.output and "vs first" in res.output
    assert "items/s" in res.output and "engine" in res.output and "onnxruntime cpu" in res.output
    assert "std ms" not in res.output and "1st run ms" not in res.output
    table = [line for line in res.output.splitlines() if "onnxruntime cpu" in line]
    assert len(table) == 4  # 2 models x 2 batches
    wide = invoke(long_a, long_b, *FAST, "--batch", "1,2", "--wide")
    assert wide.exit_code == 0, wide.output
    for header in ("create ms", "1st run ms", "p90 ms", "mean ms", "std ms", "min ms", "max ms", "runs"):
        assert header in wide.output, header
    assert max(len(line) for line in wide.output.splitlines()) > 120  # the full table, as before
