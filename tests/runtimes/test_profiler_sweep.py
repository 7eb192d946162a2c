"""Sweeps, input synthesis, reports and baselines of ``edgecv profile`` on tiny constructed models."""
from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.contract import ModelContract, embed_contract
from edgecv.errors import InputError, ModelError
from edgecv.preprocess import default_spec
from edgecv.runtimes.profiling import report, sweep, sysinfo
from edgecv.tokenizer import WordTokenizer

RNG = np.random.default_rng(0)


def _save(model: onnx.ModelProto, path) -> str:
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def conv_model(path, *, batch="N", hw=(16, 16), dtype=TensorProto.FLOAT, contract=None) -> str:
    """(B, 3, H, W) -> Conv 3x3 (8) -> ReLU -> GAP -> (B, 8) @ (8, 4) -> logits (B, 4)."""
    np_dtype = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    w = numpy_helper.from_array(RNG.standard_normal((8, 3, 3, 3)).astype(np_dtype), "w")
    fc = numpy_helper.from_array(RNG.standard_normal((8, 4)).astype(np_dtype), "fc")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", dtype, [batch, 3, *hw])],
                              [helper.make_tensor_value_info("logits", dtype, [batch, 4])], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if contract is not None:
        embed_contract(model, contract)
    return _save(model, path)


def text_model(path, *, vocab=50, contract=None) -> str:
    """(B, T) int64 ids -> Gather(emb (vocab, 8)) -> mean over T -> (B, 8) @ (8, 3)."""
    emb = numpy_helper.from_array(RNG.standard_normal((vocab, 8)).astype(np.float32), "emb")
    fc = numpy_helper.from_array(RNG.standard_normal((8, 3)).astype(np.float32), "fc")
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
             helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
             helper.make_node("MatMul", ["m", "fc"], ["logits"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], [emb, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if contract is not None:
        embed_contract(model, contract)
    return _save(model, path)


# ----------------------------------------------------------------------------- input synthesis


@pytest.mark.parametrize("dtype, np_dtype", [(TensorProto.FLOAT, np.float32), (TensorProto.FLOAT16, np.float16)])
def test_synthesize_image_inputs_follow_graph_dtype(tmp_path, dtype, np_dtype) -> None:
    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx", dtype=dtype))
    feeds = sweep.synthesize_inputs(info, batch=3)
    assert list(feeds) == ["input"]
    assert feeds["input"].shape == (3, 3, 16, 16) and feeds["input"].dtype == np_dtype
    assert info.task == "image" and not info.is_text


def test_synthesize_uses_contract_image_size_for_dynamic_dims(tmp_path) -> None:
    contract = ModelContract(task="image", labels=list("abcd"), preprocess=default_spec(size=20))
    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx", hw=("H", "W"), contract=contract))
    assert sweep.synthesize_inputs(info, batch=2)["input"].shape == (2, 3, 20, 20)


def test_dynamic_dims_without_contract_name_the_shape_flag(tmp_path) -> None:
    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx", hw=("H", "W")))
    with pytest.raises(InputError, match=r"pass --shape input=1,3,224,224"):
        sweep.synthesize_inputs(info, batch=1)
    feeds = sweep.synthesize_inputs(info, batch=2, shapes=sweep.parse_shapes(["input=1,3,24,32"]))
    assert feeds["input"].shape == (2, 3, 24, 32)  # dim 0 follows --batch


def test_fixed_batch_model_rejects_other_batch(tmp_path) -> None:
    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx", batch=1))
    assert sweep.synthesize_inputs(info, batch=1)["input"].shape[0] == 1
    with pytest.raises(InputError, match=r"fixed batch size of 1 .*cannot run --batch 8"):
        sweep.synthesize_inputs(info, batch=8)


def test_text_ids_use_tokenizer_vocab_and_seq_len(tmp_path) -> None:
    tok = WordTokenizer(["<pad>", "<unk>", "a", "b", "c"], max_len=12)
    contract = ModelContract(task="text", labels=["x", "y", "z"], tokenizer=tok.to_dict())
    info = sweep.inspect_model(text_model(tmp_path / "t.onnx", contract=contract))
    default = sweep.synthesize_inputs(info, batch=4)["input_ids"]
    assert default.shape == (4, 12) and default.dtype == np.int64  # tokenizer max_len
    ids = sweep.synthesize_inputs(info, batch=64, seq_len=40)["input_ids"]
    assert ids.shape == (64, 40)
    assert ids.min() >= 1 and ids.max() < 5  # never padding, always inside the vocabulary
    assert len(np.unique(ids)) > 1


def test_text_foreign_model_vocab_from_embedding_and_seq_len_flag(tmp_path) -> None:
    info = sweep.inspect_model(text_model(tmp_path / "t.onnx", vocab=7))
    assert info.task == "text" and info.inputs[0].vocab_size == 7
    with pytest.raises(InputError, match="--seq-len"):
        sweep.synthesize_inputs(info, batch=1)
    ids = sweep.synthesize_inputs(info, batch=32, seq_len=16)["input_ids"]
    assert ids.max() < 7 and ids.min() >= 1


@pytest.mark.parametrize("value", ["input", "input=", "input=1,a", "=1,2", "input=0,3"])
def test_parse_shapes_rejects(value) -> None:
    with pytest.raises(InputError, match="--shape"):
        sweep.parse_shapes([value])


def test_shape_for_unknown_input_or_wrong_rank(tmp_path) -> None:
    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx"))
    with pytest.raises(InputError, match="no such input"):
        sweep.synthesize_inputs(info, batch=1, shapes={"images": [1, 3, 8, 8]})
    with pytest.raises(InputError, match="rank 4"):
        sweep.synthesize_inputs(info, batch=1, shapes={"input": [1, 3]})


def test_not_onnx_is_a_model_error(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        sweep.inspect_model(bad)


# ----------------------------------------------------------------------------- sweep


def test_expand_multiplies_seq_len_only_for_text(tmp_path) -> None:
    img = sweep.inspect_model(conv_model(tmp_path / "m.onnx"))
    txt = sweep.inspect_model(text_model(tmp_path / "t.onnx"))
    cfgs = sweep.expand([img, txt], providers=["cpu"], batches=[1, 2], threads=[1], seq_lens=[8, 16])
    assert len(cfgs) == 2 + 4
    assert {c.seq_len for c in cfgs if c.model is img} == {None}


def test_profile_config_measures_and_reports_cold_start(tmp_path) -> None:
    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx"))
    res = sweep.profile_config(sweep.Config(info, "cpu", 2, 1), warmup=2, runs=15, duration_s=None)
    row = res.to_dict()
    assert row["runs"] == 15 and row["batch"] == 2 and row["threads"] == 1
    assert row["runtime"] == "onnxruntime" and row["providers"] == ["CPUExecutionProvider"]
    assert row["create_ms"] > 0 and row["first_run_ms"] > 0
    assert row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["throughput"] == pytest.approx(2 * 1000 / row["mean_ms"])


# ----------------------------------------------------------------------------- reports


def _row(model, runtime="onnxruntime", p50=2.0, batch=1, samples=None):
    return {"model": model, "runtime": runtime, "provider": "cpu", "batch": batch, "threads": 2,
            "seq_len": None, "p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "mean_ms": p50, "runs": 3,
            "throughput": 1000 / p50, "samples_ms": samples or [p50] * 3}


def test_ratios_compare_with_first_of_each_group() -> None:
    rows = report.add_ratios([_row("fp32.onnx", p50=4.0), _row("int8.onnx", p50=2.0),
                              _row("best.pt", "torch", p50=8.0), _row("fp32.onnx", p50=10.0, batch=8)])
    assert [r["speedup"] for r in rows] == [1.0, 2.0, 0.5, 1.0]
    lines = report.comparison_lines(rows)
    assert lines[0].startswith("int8.onnx (onnxruntime) is 2.00x faster than fp32.onnx (onnxruntime)")
    assert "best.pt (torch) is 2.00x slower" in lines[1]


def test_json_csv_markdown_outputs(tmp_path) -> None:
    rows = report.add_ratios([_row("a.onnx"), _row("b.onnx", p50=1.0)])
    env = sysinfo.collect(["CPUExecutionProvider"])
    report.write_json(str(tmp_path / "r.json"), rows, env)
    data = json.loads((tmp_path / "r.json").read_text())
    assert isinstance(data, list) and data[1]["speedup"] == 2.0
    assert data[0]["environment"]["providers_used"] == ["CPUExecutionProvider"]
    assert json.loads(report.write_json("-", rows, env))[0]["model"] == "a.onnx"
    report.write_csv(tmp_path / "r.csv", rows)
    got = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert got[1]["model"] == "b.onnx" and float(got[1]["p50_ms"]) == 1.0 and "samples_ms" not in got[0]
    report.write_markdown(tmp_path / "r.md", rows, ["CPU: test"])
    md = (tmp_path / "r.md").read_text()
    assert "| model |" in md and "b.onnx (onnxruntime) is 2.00x faster" in md and "- CPU: test" in md
    table = report.format_results(rows)
    assert "vs first" in table and "2.00x" in table


def test_plot_writes_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    rows = [_row("a.onnx", samples=[1.0, 1.2, 1.1]), _row("a.onnx", "opencv", samples=[2.0, 2.5, 2.2])]
    report.plot_latency(tmp_path / "lat.png", rows)
    assert (tmp_path / "lat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sysinfo_header_names_cpu_versions_and_providers() -> None:
    env = sysinfo.collect(["CPUExecutionProvider"])
    assert env["cores_logical"] >= 1 and env["versions"]["onnxruntime"]
    text = "\n".join(sysinfo.header_lines(env))
    assert "CPU:" in text and "onnxruntime" in text and "CPUExecutionProvider" in text
    assert "VNNI" in sysinfo.vnni_note(env) or "AVX2" in sysinfo.vnni_note(env)


# ----------------------------------------------------------------------------- baselines


def test_opencv_baseline_same_inputs(tmp_path) -> None:
    from edgecv.runtimes.profiling import baselines

    info = sweep.inspect_model(conv_model(tmp_path / "m.onnx"))
    cfg = sweep.Config(info, "cpu", 1, 1)
    feeds = sweep.synthesize_inputs(info, batch=1)
    res = baselines.profile_opencv(cfg, feeds, warmup=1, runs=5, duration_s=None)
    assert res.runtime == "opencv" and res.stats.runs == 5 and res.stats.p50_ms > 0


def test_opencv_baseline_unloadable_model_is_one_line_error(tmp_path) -> None:
    from edgecv.runtimes.profiling import baselines

    # an operator from a custom domain: a valid ONNX file that cv2.dnn has no importer for
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    info = sweep.inspect_model(_save(model, tmp_path / "custom.onnx"))
    feeds = sweep.synthesize_inputs(info, batch=1)
    with pytest.raises(ModelError, match="OpenCV dnn cannot") as err:
        baselines.profile_opencv(sweep.Config(info, "cpu", 1, 1), feeds, warmup=0, runs=2, duration_s=None)
    assert "\n" not in str(err.value) and "custom.onnx" in str(err.value)


# ----------------------------------------------------------------------------- impossible configurations


@pytest.fixture(scope="module")
def attention_onnx(tmp_path_factory) -> dict[str, str]:
    """A real edgecv attention classifier with max_len 64 (position table of 64 rows), exported
    by the edgecv exporter: once with a contract declaring the maximum, once as a foreign file."""
    torch = pytest.importorskip("torch")
    from edgecv.exporters import export_onnx
    from edgecv.models import create_model

    torch.manual_seed(0)
    model = create_model("attention_classifier", vocab_size=20, num_classes=2, embed_dim=16, num_heads=2,
                         num_layers=1, ff_dim=16, max_len=64).eval()
    folder = tmp_path_factory.mktemp("attention")
    foreign = str(export_onnx(model, folder / "foreign.onnx", task="text"))
    proto = onnx.load(foreign)
    tok = WordTokenizer(["<pad>", "<unk>"] + [f"w{i}" for i in range(18)], max_len=64)
    embed_contract(proto, ModelContract(task="text", labels=["neg", "pos"], architecture="attention_classifier",
                                        tokenizer=tok.to_dict(), max_seq_len=model.max_len))
    onnx.save(proto, str(folder / "reviews.onnx"))
    return {"contract": str(folder / "reviews.onnx"), "foreign": foreign}


def _sweep(path: str, seq_lens: list[int], **kwargs):
    from edgecv.runtimes.profiling.job import ProfileOptions, run_profile

    return run_profile(ProfileOptions(models=[path], providers=["cpu"], threads=[1], seq_lens=seq_lens,
                                      warmup=1, runs=3, peak="off", **kwargs))


def test_seq_len_above_the_declared_maximum_is_skipped_and_the_rest_measured(attention_onnx) -> None:
    rep = _sweep(attention_onnx["contract"], [16, 64, 256])
    assert [(r["seq_len"], r["runs"]) for r in rep.rows] == [(16, 3), (64, 3)]
    assert all(r["p50_ms"] > 0 for r in rep.rows)
    skipped = [n for n in rep.notices if n.startswith("skipped:")]
    assert skipped == ["skipped: reviews.onnx cpu batch 1 threads 1 seq-len 256: sequence length 256 is above "
                       "the model's maximum of 64 tokens (edgecv.max_seq_len); use --seq-len 64 or less"]


def test_a_configuration_whose_first_run_fails_is_skipped(attention_onnx) -> None:
    """No contract: the maximum is unknown until ONNX Runtime's broadcast error, which becomes
    a one-line notice with the useful end of its message; 16 and 64 are still measured."""
    rep = _sweep(attention_onnx["foreign"], [16, 256, 64], ops=True, top=2)
    assert [r["seq_len"] for r in rep.rows] == [16, 64] and all("ops" in r for r in rep.rows)
    (notice,) = [n for n in rep.notices if n.startswith("skipped:")]
    assert notice.startswith("skipped: foreign.onnx cpu batch 1 threads 1 seq-len 256: ONNX Runtime cannot run")
    assert "64 by 256" in notice and "\n" not in notice and len(rep.ops) == 2


def test_nothing_measurable_is_one_error(attention_onnx) -> None:
    with pytest.raises(InputError, match=r"^reviews\.onnx: sequence length 256 is above .* maximum of 64"):
        _sweep(attention_onnx["contract"], [256])
    with pytest.raises(ModelError, match=r"no configuration could be measured \(2 skipped\); first: "
                                         r"foreign\.onnx cpu batch 1 threads 1 seq-len 100: .*64 by 100"):
        _sweep(attention_onnx["foreign"], [100, 200])


def test_plan_sets_aside_what_cannot_be_built(tmp_path) -> None:
    info = sweep.inspect_model(conv_model(tmp_path / "fixed.onnx", batch=1))
    kept, skipped = sweep.plan(sweep.expand([info], providers=["cpu"], batches=[1, 4], threads=[2]))
    assert [c.batch for c in kept] == [1]
    assert [s.notice for s in skipped] == [
        "skipped: fixed.onnx cpu batch 4 threads 2: input 'input' has a fixed batch size of 1 ([1, 3, 16, 16]), "
        "cannot run --batch 4; re-export with a dynamic batch axis or use --batch 1"]
