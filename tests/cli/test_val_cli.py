"""``edgecv val`` through click's CliRunner and through real subprocesses (bad inputs: one line
on stderr, exit 1 or 2, no traceback; and a run with torch blocked)."""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
sys.path.insert(0, str(Path(__file__).parents[1] / "badinput"))
import _infer_fixtures as F  # noqa: E402
from _cli import assert_clean_failure, run_edgecv  # noqa: E402

from edgecv.cli import cli  # noqa: E402

CPU = ("--provider", "cpu", "--threads", "1")


@pytest.fixture(autouse=True)
def _no_inherited_log_settings(monkeypatch):
    """Subprocesses start as a user's shell would (CliRunner runs may have set OpenCV's log
    variables in this process)."""
    for key in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The colour model (and a slow twin with the same answers), a data set root with val/ whose
    red folder holds 2 blue images out of 6, a foreign model and a text model with its CSV."""
    d = tmp_path_factory.mktemp("val")
    for colour in F.COLOURS:
        folder = d / "data" / "val" / colour
        folder.mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(folder / f"{i}.png"), F.solid("blue" if colour == "red" and i < 2 else colour))
    (d / "data" / "train").mkdir()
    (d / "reviews.csv").write_text("text,label\ngood movie,positive\ngreat,positive\nbad,negative\nawful,negative\n")
    return {"dir": d, "data": d / "data", "model": F.image_model(d / "model.onnx"),
            "slow": F.image_model(d / "slow.onnx", heavy=2), "foreign": F.image_model(d / "foreign.onnx", contract=False),
            "text": F.text_model(d / "text.onnx"), "features": F.feature_map_model(d / "features.onnx"),
            "reviews": d / "reviews.csv"}


def invoke(*args: object):
    return CliRunner().invoke(cli, ["val", *map(str, args)], catch_exceptions=False)


def test_two_models_side_by_side_with_every_output(files, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(files["slow"], files["model"], files["data"], *CPU, "--batch-size", "2", "--json",
                    tmp_path / "r.json", "--csv", tmp_path / "r.csv", "--markdown", tmp_path / "r.md", "--out", out)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "data/val (image folders, 3 classes, 18 samples)" in text  # DATA/val, not DATA
    assert "red -> blue 2 (33.3 %)" in text and "recommendation: ship model.onnx" in text
    report = json.loads((tmp_path / "r.json").read_text())
    slow, fast = report["models"]
    assert slow["top1"] == fast["top1"] == pytest.approx(16 / 18) and slow["top3"] == 1.0
    assert fast["per_class"][2] == {"class": "red", "precision": 1.0, "recall": pytest.approx(0.6667, abs=1e-4),
                                    "f1": 0.8, "support": 6}
    assert fast["engine"]["providers"] == ["CPUExecutionProvider"] and fast["engine"]["threads"] == 1
    assert fast["latency"]["batch"] == 2 and fast["latency"]["runs"] == 9
    assert report["comparison"][1]["speedup"] > 1 and report["recommendation"]["name"] == "model.onnx"
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["model"] for r in rows] == ["slow.onnx", "model.onnx"] and rows[1]["vs_first"].startswith("+0.0 pt")
    assert "**Recommendation:** ship model.onnx" in (tmp_path / "r.md").read_text()
    assert sorted(p.name for p in (out / "model").iterdir()) == ["confusion_matrix.csv", "confusion_matrix.png",
                                                                 "per_class.csv"]
    assert (out / "slow" / "per_class.csv").is_file()


def test_json_to_stdout_moves_the_summary_to_stderr(files) -> None:
    proc = run_edgecv("val", files["model"], files["data"], *CPU, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["models"][0]["samples"] == 18 and "recommendation: ship model.onnx" in proc.stderr


def test_foreign_model_needs_labels_and_takes_preprocessing_flags(files, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    result = invoke(files["foreign"], files["data"], *CPU, "--labels", labels, "--stretch", "--mean", "0,0,0",
                    "--std", "1", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["models"][0]["top1"] == pytest.approx(16 / 18)


def test_text_table(files, tmp_path: Path) -> None:
    result = invoke(files["text"], files["reviews"], *CPU, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["data"]["kind"] == "texts" and report["models"][0]["top1"] == 1.0


def test_help_has_a_worked_example() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "edgecv val model.onnx model.int8.onnx data/" in result.output


def _bad(files: dict[str, Path], tmp: Path, case: str) -> tuple[list[object], int, list[object], list[str]]:
    """(arguments, exit code, names the error line must contain, phrases it must contain)."""
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    other = tmp / "other"
    for name in ("red", "purple", "orange"):
        (other / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(other / name / "x.png"), F.solid("red"))
    broken = tmp / "broken"
    for name in ("red", "blue"):
        (broken / name).mkdir(parents=True, exist_ok=True)
        (broken / name / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    cases = {
        "empty folder": ([files["model"], empty], 1, [empty], ["no class sub-folders"]),
        "classes that do not match": ([files["model"], other], 1, [other], ["orange, purple", "--labels"]),
        "every file unreadable": ([files["model"], broken], 1, [broken], ["none of the 2 samples could be read"]),
        "not a classifier": ([files["features"], files["data"]], 1, [files["features"]], ["not a classifier"]),
        "foreign model without labels": ([files["foreign"], files["data"]], 1, [files["foreign"]], ["--labels"]),
        "image model on texts": ([files["model"], files["reviews"]], 1, [files["model"]], ["image model"]),
        "missing model": ([tmp / "nope.onnx", files["data"]], 1, ["nope.onnx"], ["not found"]),
        "missing data": ([files["model"], tmp / "nodata"], 1, ["nodata"], ["not found"]),
        "only one path": ([files["model"]], 2, [], ["MODEL.onnx [MORE.onnx ...] DATA"]),
        "unwritable json": ([files["model"], files["data"], "--json", "/proc/val.json"], 1, ["val.json"],
                            ["cannot write"]),
        "out is a file": ([files["model"], files["data"], "--out", files["reviews"]], 1, ["reviews.csv"],
                          ["not a folder"]),
        "negative tolerance": ([files["model"], files["data"], "--tolerance", "-1"], 2, [], ["--tolerance"]),
    }
    return cases[case]


@pytest.mark.parametrize("case", ["empty folder", "classes that do not match", "every file unreadable",
                                  "not a classifier", "foreign model without labels", "image model on texts",
                                  "missing model", "missing data", "only one path", "unwritable json",
                                  "out is a file", "negative tolerance"])
def test_bad_inputs_are_one_line(files, tmp_path: Path, case: str) -> None:
    args, code, names, says = _bad(files, tmp_path, case)
    proc = run_edgecv("val", *args, *CPU)
    assert_clean_failure(proc, code=code, names=names, says=says)
    assert proc.stdout == ""


def test_runs_without_torch(files, tmp_path: Path) -> None:
    """The deploy-side command never imports torch, not even through edgecv.training."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text('import sys\nsys.modules["torch"] = None\n')
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = run_edgecv("val", files["model"], files["data"], *CPU, "--out", tmp_path / "out", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "recommendation: ship model.onnx" in proc.stdout and (tmp_path / "out" / "model" / "per_class.csv").is_file()
