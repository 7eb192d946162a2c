"""``edgecv demo`` end to end: every artefact exists and the figures are real.

The reduced run (``--quick``, one thread, fixed seed) goes through a real subprocess once and is
shared by the assertions below; the default run (>= 90 % validation accuracy) is marked slow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from edgecv.cli import cli  # noqa: E402

QUICK_MIN_VAL_ACC = 0.5  # 4 classes (chance 0.25); the seeded --quick run reaches ~0.67
FULL_MIN_VAL_ACC = 0.9


def _run_demo(out: Path, *extra: str, timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "edgecv", "demo", "--out", str(out), "--threads", "1",
                           "--json", *extra], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = _run_demo(out, "--quick", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "summary": json.loads(proc.stdout), "stderr": proc.stderr}


def test_quick_demo_reports_every_step_and_the_accuracy(quick_demo: dict[str, Any]) -> None:
    for n in range(1, 6):
        assert f"[{n}/5] " in quick_demo["stderr"]  # progress on stderr, JSON alone on stdout
    assert "epoch 14/14" in quick_demo["stderr"]
    figures = quick_demo["summary"]["figures"]
    assert figures["val_accuracy"] >= QUICK_MIN_VAL_ACC, figures
    # the model's class order (index i -> name: sorted class folders), not the generator's
    assert figures["epochs"] == 14 and figures["classes"] == ["circle", "square", "star", "triangle"]
    from edgecv.contract import read_contract

    assert figures["classes"] == read_contract(quick_demo["out"] / "model.onnx").labels
    assert figures["fp32_parity_passed"] is True
    assert figures["fp32_top1_agreement"] == 1.0 and figures["fp32_max_abs_diff"] < 1e-3
    assert 0.8 <= figures["int8_top1_agreement"] <= 1.0
    assert 0.0 <= figures["video_frame_accuracy"] <= 1.0
    assert figures["video_frames"] == 30 and figures["video_fps"] > 0
    assert figures["fp32_p50_ms"] > 0 and figures["int8_p50_ms"] > 0
    assert figures["int8_speedup"] == pytest.approx(figures["fp32_p50_ms"] / figures["int8_p50_ms"], rel=1e-2)


def test_quick_demo_writes_every_artefact(quick_demo: dict[str, Any]) -> None:
    out: Path = quick_demo["out"]
    for cls in ("circle", "square", "triangle", "star"):
        assert len(list((out / "data" / "train" / cls).glob("*.png"))) == 240
        assert len(list((out / "data" / "val" / cls).glob("*.png"))) == 80
    for rel in ("train/best.pt", "train/last.pt", "train/metrics.csv", "train/curves.png",
                "train/confusion_matrix.png", "model.onnx", "model.int8.onnx", "model.export.json",
                "video/shapes.mp4", "video/shapes.truth.json", "profile/profile.json", "profile/profile.md",
                "val/val.json", "val/val.md", "val/model/confusion_matrix.png",
                "profile/latency.png", "summary.json", ".edgecv-demo"):
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
    assert len((out / "train" / "metrics.csv").read_text().strip().splitlines()) == 1 + 14
    export = json.loads((out / "model.export.json").read_text())
    assert export["passed"] is True and {s["stage"] for s in export["stages"]} >= {"fp32", "int8"}
    profile = json.loads((out / "profile" / "profile.json").read_text())
    assert [row["model"] for row in profile] == ["model.onnx", "model.int8.onnx"]


def test_quick_demo_accuracy_figures_come_from_val(quick_demo: dict[str, Any]) -> None:
    """fp32 and int8 accuracy are edgecv val's, on every validation image (none of them used
    for int8 calibration), and the stream runs the file val recommends."""
    out: Path = quick_demo["out"]
    figures = quick_demo["summary"]["figures"]
    val = json.loads((out / "val" / "val.json").read_text())
    assert [Path(m["model"]).name for m in val["models"]] == ["model.onnx", "model.int8.onnx"]
    fp32, int8 = val["models"]
    assert fp32["samples"] == int8["samples"] == figures["val_samples"] == 320
    assert figures["fp32_accuracy"] == pytest.approx(fp32["top1"], abs=1e-4)
    assert figures["int8_accuracy"] == pytest.approx(int8["top1"], abs=1e-4)
    assert figures["fp32_macro_f1"] == pytest.approx(fp32["macro_f1"], abs=1e-4)
    assert figures["val_recommendation"] == val["recommendation"]["text"]
    assert figures["stream_model"] == val["recommendation"]["name"]
    for name in ("model", "model.int8"):
        for file in ("per_class.csv", "confusion_matrix.csv", "confusion_matrix.png"):
            assert (out / "val" / name / file).stat().st_size > 0
    speed = figures["int8_speed_check"]
    assert speed["recommended"] in ("int8", "fp32") and set(speed["speedup"]) == {"1", "8"}
    assert speed["threads"] == 1
    export = json.loads((out / "model.export.json").read_text())
    expected = [w for w in export["warnings"] if w.startswith("int8")]
    assert figures["int8_warning"] == (" | ".join(expected) if expected else None)


def test_summary_shows_the_int8_warning(quick_demo: dict[str, Any]) -> None:
    from edgecv.demo.report import format_summary

    summary = json.loads(json.dumps(quick_demo["summary"]))
    text = format_summary(summary)
    assert "edgecv val" in text and f"recommendation        {summary['figures']['val_recommendation']}" in text
    assert ("int8 warning" in text) == bool(summary["figures"]["int8_warning"])
    summary["figures"]["int8_warning"] = "int8 is not faster than fp32 on this CPU (...); deploy model.onnx (fp32)"
    assert "int8 warning          int8 is not faster than fp32 on this CPU" in format_summary(summary)


def test_quick_demo_stream_outputs_match_the_video(quick_demo: dict[str, Any]) -> None:
    out: Path = quick_demo["out"]
    cap = cv2.VideoCapture(str(out / "stream" / "annotated.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 30
    lines = [json.loads(line) for line in (out / "stream" / "predictions.jsonl").read_text().splitlines()]
    assert [rec["frame"] for rec in lines] == list(range(30))
    truth = json.loads((out / "video" / "shapes.truth.json").read_text())["frames"]
    correct = sum(rec["top_k"][0]["label"] == t["label"] for rec, t in zip(lines, truth))
    assert quick_demo["summary"]["figures"]["video_frame_accuracy"] == pytest.approx(correct / 30, abs=1e-4)


def test_summary_json_matches_stdout_and_lists_real_sizes(quick_demo: dict[str, Any]) -> None:
    out: Path = quick_demo["out"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == quick_demo["summary"]
    for entry in on_disk["artefacts"]:
        path = Path(entry["path"])
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        assert entry["bytes"] == size, entry
    assert on_disk["settings"]["quick"] is True and on_disk["settings"]["threads"] == 1


@pytest.mark.slow
def test_default_demo_reaches_90_percent(tmp_path: Path) -> None:
    proc = _run_demo(tmp_path / "full", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout)["figures"]
    assert figures["val_accuracy"] >= FULL_MIN_VAL_ACC, figures
    assert figures["int8_accuracy"] >= FULL_MIN_VAL_ACC - 0.03, figures
    assert figures["video_frame_accuracy"] >= 0.8, figures


# ----------------------------------------------------------------------------- fast checks, no training
def test_refuses_a_non_empty_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "--quick"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "not made by 'edgecv demo'" in result.output
    assert "--force" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("model, expected", [
    ("resnet9000", "unknown model 'resnet9000'"),
    ("lstm_classifier", "the demo trains on images"),
])
def test_rejects_models_it_cannot_train(tmp_path: Path, model: str, expected: str) -> None:
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "x"), "--model", model])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and expected in result.output
    assert result.output.count("\n") == 1 and "squeezenet1_1" in result.output
    assert not (tmp_path / "x").exists()


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(cli, ["demo", "--out", str(target)])
    assert result.exit_code == 2  # click's own path check: a usage error


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--img-size", "16"), ("--per-class", "2"),
                                           ("--threads", "0")])
def test_out_of_range_options_are_usage_errors(tmp_path: Path, option: str, value: str) -> None:
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "x"), option, value])
    assert result.exit_code == 2 and option in result.output


def test_rerun_clears_only_the_demo_files(tmp_path: Path) -> None:
    from edgecv.demo.config import MARKER
    from edgecv.demo.run import prepare_out

    (tmp_path / MARKER).write_text("")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "old.pt").write_bytes(b"x")
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "mine.txt").write_text("keep")
    prepare_out(tmp_path, force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "mine.txt"]


def test_force_writes_into_a_foreign_folder_without_deleting_its_files(tmp_path: Path) -> None:
    from edgecv.demo.config import MARKER
    from edgecv.demo.run import prepare_out

    (tmp_path / "notes.txt").write_text("keep me")
    prepare_out(tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me" and (tmp_path / MARKER).exists()


def test_help_has_a_worked_example_and_stays_torch_free() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom edgecv.cli import cli\n"
            "r = CliRunner().invoke(cli, ['demo', '--help'])\n"
            "assert r.exit_code == 0, r.output\nassert 'edgecv demo --quick' in r.output\n"
            "assert 'torch' not in sys.modules, 'demo --help imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_without_torch_the_demo_says_which_extra_to_install(tmp_path: Path) -> None:
    code = ("import sys\nsys.modules['torch'] = None  # as on an edge device without PyTorch\n"
            "from edgecv.cli import main\nmain(['demo', '--out', sys.argv[1], '--quick'])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    from edgecv.errors import install_hint

    assert proc.stderr.strip() == f"Error: torch is not installed; this feature needs it: {install_hint('torch', 'train')}"
    assert "--index-url https://download.pytorch.org/whl/cpu" in proc.stderr  # the CPU build first
    assert not (tmp_path / "out").exists()


def test_human_summary_lists_every_figure_and_artefact(quick_demo: dict[str, Any]) -> None:
    from edgecv.demo.report import format_summary

    text = format_summary(quick_demo["summary"])
    figures = quick_demo["summary"]["figures"]
    assert f"validation accuracy   {100 * figures['val_accuracy']:.1f} %" in text
    for row in ("fp32 ONNX vs PyTorch  passed", "int8 vs PyTorch", "video stream", "latency p50, batch 1"):
        assert row in text
    for entry in quick_demo["summary"]["artefacts"]:
        assert entry["path"] in text


def test_summary_classes_follow_the_model_not_the_generator(tmp_path: Path) -> None:
    """figures["classes"] is the order of the model's outputs: the ONNX contract's labels, else the
    checkpoint's classes; never the generator's list (circle, square, triangle, star)."""
    from types import SimpleNamespace

    import onnx
    from onnx import TensorProto, helper

    from edgecv.contract import ModelContract, embed_contract
    from edgecv.demo.report import model_classes

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    embed_contract(model, ModelContract(task="image", labels=["circle", "square", "star", "triangle"]))
    onnx.save(model, tmp_path / "model.onnx")
    generator = ["circle", "square", "triangle", "star"]
    trained = SimpleNamespace(classes=["b", "a"])
    assert model_classes(trained, SimpleNamespace(output=tmp_path / "model.onnx"), fallback=generator) == [
        "circle", "square", "star", "triangle"]
    assert model_classes(trained, SimpleNamespace(output=tmp_path / "gone.onnx"), fallback=generator) == ["b", "a"]
    assert model_classes(SimpleNamespace(classes=[]), SimpleNamespace(output=None), fallback=generator) == generator
