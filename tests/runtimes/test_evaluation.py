"""edgecv.runtimes.evaluation.evaluate on constructed models whose accuracy per class is known.

The colour model (``_infer_fixtures.image_model``) predicts the dominant colour channel; the data
folder below holds 10 images per colour, but 3 of the "red" images are painted blue, so every
figure is known exactly: top-1 27/30, red recall 0.7, blue precision 10/13, one confused pair.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import InputError, ModelError  # noqa: E402
from edgecv.metrics import OTHER, confusion_matrix, macro_f1, per_class, worst_confusions  # noqa: E402
from edgecv.runtimes.evaluation.compare import compare, describe_delta, recommend  # noqa: E402
from edgecv.runtimes.evaluation.data import load_data, match_classes, model_bytes, normalise  # noqa: E402
from edgecv.runtimes.evaluation.evaluate import EvalOptions, evaluate  # noqa: E402
from edgecv.runtimes.evaluation.report import format_csv, format_markdown, format_report, write_outputs  # noqa: E402
from edgecv.runtimes.labels import imagenet_labels  # noqa: E402

MISPAINTED = 3  # "red" images that are really blue


def write_colour_folder(root: Path, *, per_class: int = 10, mispainted: int = MISPAINTED,
                        names: dict[str, str] | None = None) -> Path:
    """root/<class>/*.png: solid colours; the first ``mispainted`` red images are blue."""
    for colour in F.COLOURS:
        folder = root / (names or {}).get(colour, colour)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            paint = "blue" if colour == "red" and i < mispainted else colour
            cv2.imwrite(str(folder / f"{i:02d}.png"), F.solid(paint))
    return root


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("colours") / "data")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval_models")
    return {"image": F.image_model(d / "image.onnx"), "heavy": F.image_model(d / "heavy.onnx", heavy=3),
            "text": F.text_model(d / "text.onnx"), "features": F.feature_map_model(d / "features.onnx")}


def _opts(**kw) -> EvalOptions:
    from edgecv.runtimes.engines.base import EngineOptions

    return EvalOptions(engine=EngineOptions(provider="cpu", threads=1), **kw)


def test_known_accuracy_per_class_and_confusions(models, colour_data: Path) -> None:
    report = evaluate([models["image"]], colour_data, _opts(batch_size=4))
    m = report.models[0]
    assert m.samples == 30 and m.skipped == []
    assert m.top1 == pytest.approx(27 / 30) and m.topk == 1.0 and m.k == 3
    rows = {c.name: c for c in m.classes}
    assert (rows["red"].precision, rows["red"].recall, rows["red"].support) == (1.0, 0.7, 10)
    assert rows["blue"].precision == pytest.approx(10 / 13) and rows["blue"].recall == 1.0
    assert (rows["green"].precision, rows["green"].recall) == (1.0, 1.0)
    blue_f1 = 2 * (10 / 13) / (10 / 13 + 1)
    assert m.macro_f1 == pytest.approx((blue_f1 + 1.0 + 2 * 0.7 / 1.7) / 3)
    assert report.data.classes == ["blue", "green", "red"]  # sorted folder names
    assert m.confusion.tolist() == [[10, 0, 0], [0, 10, 0], [3, 0, 7]] and m.columns == ["blue", "green", "red"]
    assert m.worst == [{"true": "red", "predicted": "blue", "count": 3, "rate": 0.3}]
    assert m.latency.batch == 4 and m.latency.runs == 7 and m.latency.p95_ms >= m.latency.p50_ms > 0
    assert m.engine["providers"] == ["CPUExecutionProvider"] and m.engine["precision"] == "fp32"
    assert m.file_bytes == models["image"].stat().st_size
    json.dumps(report.to_dict())  # JSON-ready as is


def test_unreadable_images_are_skipped_and_counted(models, colour_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    (data / "green" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # header ok, decode fails
    (data / "green" / "not_an_image.jpg").write_bytes(b"hello")  # not even the header
    report = evaluate(models["image"], data, _opts(batch_size=4))
    m = report.models[0]
    assert m.samples == 30 and len(m.skipped) == 2
    assert any("truncated.png" in s for s in m.skipped) and any("not_an_image.jpg" in s for s in m.skipped)
    assert m.top1 == pytest.approx(27 / 30)  # the skipped files change nothing else
    assert m.latency.runs == 7  # skipped files are replaced in the batch: full batches stay full


def test_test_split_is_preferred_then_val(models, tmp_path: Path) -> None:
    write_colour_folder(tmp_path / "ds" / "train", mispainted=0)
    write_colour_folder(tmp_path / "ds" / "val", mispainted=1)
    assert load_data(tmp_path / "ds").path == tmp_path / "ds" / "val"
    write_colour_folder(tmp_path / "ds" / "test", mispainted=2)
    report = evaluate(models["image"], tmp_path / "ds", _opts())
    assert report.data.path == tmp_path / "ds" / "test" and report.models[0].top1 == pytest.approx(28 / 30)


def test_foreign_model_with_imagenet_labels_and_preprocessing_flags(tmp_path: Path) -> None:
    """A 1000-class model without contract: folder names meet ImageNet's names loosely
    (``great_white_shark`` = "great white shark"); a prediction of a class that has no folder
    (the mispainted blue images -> class 2) lands in the (other) column."""
    names = imagenet_labels()
    model = F.image_model(tmp_path / "foreign.onnx", contract=False, labels=names)
    for folder, colours in (("tench", ["red"] * 7 + ["blue"] * 3), ("goldfish", ["green"] * 10),
                            ("Great_White_Shark", ["blue"] * 4)):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i, colour in enumerate(colours):
            cv2.imwrite(str(tmp_path / "data" / folder / f"{i}.png"), F.solid(colour))
    report = evaluate(model, tmp_path / "data", _opts(labels="imagenet", overrides={"stretch": True}))
    m = report.models[0]
    assert [c.name for c in m.classes] == ["Great_White_Shark", "goldfish", "tench"]
    assert m.k == 5 and m.samples == 24 and m.top1 == pytest.approx(21 / 24)
    assert m.confusion.tolist() == [[4, 0, 0], [0, 10, 0], [3, 0, 7]]  # the shark folder exists: no (other)
    shutil.rmtree(tmp_path / "data" / "Great_White_Shark")
    m = evaluate(model, tmp_path / "data", _opts(labels="imagenet", overrides={"stretch": True})).models[0]
    assert m.columns == ["goldfish", "tench", OTHER] and m.confusion.tolist() == [[10, 0, 0], [0, 7, 3]]
    assert m.worst[0]["predicted"] == OTHER and m.classes[1].recall == 0.7


def test_foreign_model_labels_file_and_missing_labels(tmp_path: Path) -> None:
    model = F.image_model(tmp_path / "foreign.onnx", contract=False)
    data = write_colour_folder(tmp_path / "data")
    with pytest.raises(InputError, match=r"class folders not among the classes of foreign.onnx: blue, green, red.*--labels"):
        evaluate(model, data, _opts())
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    assert evaluate(model, data, _opts(labels=str(labels))).models[0].top1 == pytest.approx(27 / 30)


def test_text_table(models, tmp_path: Path) -> None:
    table = tmp_path / "reviews.csv"
    table.write_text("text,label\nthe movie was good,positive\ngreat,positive\nbad movie,negative\n"
                     "awful awful,negative\nthe movie was bad,positive\n")
    report = evaluate(models["text"], table, _opts(batch_size=2))
    m = report.models[0]
    assert report.data.kind == "texts" and m.samples == 5 and m.top1 == pytest.approx(0.8)
    assert m.worst[0] == {"true": "positive", "predicted": "negative", "count": 1, "rate": pytest.approx(1 / 3, abs=1e-4)}
    assert m.latency.runs == 2  # 2 + 2 full batches, the last one (1 text) not timed


def test_two_models_side_by_side_recommend_the_faster_equal_one(models, colour_data: Path) -> None:
    report = evaluate([models["heavy"], models["image"]], colour_data, _opts(batch_size=2))
    heavy, light = report.models
    assert heavy.top1 == light.top1 == pytest.approx(0.9)  # same answers, very different cost
    assert light.latency.per_image_ms < heavy.latency.per_image_ms
    assert report.comparison[0]["text"] == "reference"
    row = report.comparison[1]
    assert row["top1_points"] == 0 and row["speedup"] > 1 and row["text"].startswith("+0.0 pt accuracy, ")
    assert report.recommendation["name"] == "image.onnx" and report.recommendation["text"].startswith("ship image.onnx")
    text = format_report(report)
    assert "recommendation: ship image.onnx" in text and "x faster" in text
    assert "| heavy.onnx |" in format_markdown(report)
    lines = format_csv(report).splitlines()
    assert lines[0].startswith("model,precision,device,samples") and len(lines) == 3


def _fake(name: str, top1: float, ms: float, size: int = 1000) -> SimpleNamespace:
    return SimpleNamespace(name=name, path=Path(name), top1=top1, macro_f1=top1, file_bytes=size,
                           latency=SimpleNamespace(per_image_ms=ms))


def test_recommendation_is_the_fastest_within_tolerance() -> None:
    fp32, fp16, int8 = _fake("m.onnx", 0.90, 2.0, 4000), _fake("m.fp16.onnx", 0.899, 1.5, 2000), \
        _fake("m.int8.onnx", 0.885, 1.0, 1100)
    assert recommend([fp32, fp16, int8], 1.0)["name"] == "m.fp16.onnx"  # int8 is 1.5 pt below the best
    rec = recommend([fp32, fp16, int8], 2.0)
    assert rec["name"] == "m.int8.onnx" and "-1.5 pt accuracy, 2.0x faster, 0.28x size" in rec["text"]
    rec = recommend([fp32, int8], 0.0)
    assert rec["name"] == "m.onnx" and "m.int8.onnx is faster but -1.5 pt" in rec["text"]
    rows = compare([fp32, int8])
    assert rows[1]["top1_points"] == pytest.approx(-1.5) and rows[1]["speedup"] == 2.0
    assert describe_delta(-0.4, 1 / 1.3, 0.5) == "-0.4 pt accuracy, 1.3x slower, 0.50x size"


def test_outputs_per_model(models, colour_data: Path, tmp_path: Path) -> None:
    report = evaluate([models["image"], models["image"]], colour_data, _opts())
    files = write_outputs(report, tmp_path / "out")
    names = sorted(str(f.relative_to(tmp_path / "out")) for f in files)
    assert names == ["image-2/confusion_matrix.csv", "image-2/confusion_matrix.png", "image-2/per_class.csv",
                     "image/confusion_matrix.csv", "image/confusion_matrix.png", "image/per_class.csv"]
    per_class_csv = (tmp_path / "out" / "image" / "per_class.csv").read_text().splitlines()
    assert per_class_csv[0] == "class,precision,recall,f1,support" and per_class_csv[3].startswith("red,1.0,0.7,")
    assert (tmp_path / "out" / "image" / "confusion_matrix.csv").read_text().splitlines()[3] == "red,3,0,7"
    assert (tmp_path / "out" / "image" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_sees_every_sample(models, colour_data: Path) -> None:
    seen: list[tuple[str, int, int]] = []

    class Bar:
        def __init__(self, name: str, total: int) -> None:
            self.name, self.total, self.n = name, total, 0

        def update(self, n: int) -> None:
            self.n += n

        def close(self) -> None:
            seen.append((self.name, self.total, self.n))

    evaluate(models["image"], colour_data, _opts(batch_size=8), progress=Bar)
    assert seen == [("image.onnx", 30, 30)]


@pytest.mark.parametrize("case, error, expected", [
    ("empty", InputError, "no class sub-folders"),
    ("unknown class", InputError, "class folders not among the classes of image.onnx: purple"),
    ("features", ModelError, "not a classifier"),
    ("text on images", InputError, "is a text model"),
])
def test_bad_inputs(models, colour_data: Path, tmp_path: Path, case: str, error: type, expected: str) -> None:
    model, data = models["image"], colour_data
    if case == "empty":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "unknown class":
        data = write_colour_folder(tmp_path / "data")
        (data / "purple").mkdir()
        cv2.imwrite(str(data / "purple" / "p.png"), F.solid("red"))
    elif case == "features":
        model = models["features"]
    else:
        model = models["text"]
    with pytest.raises(error, match=expected):
        evaluate(model, data, _opts())


def test_every_image_unreadable_is_an_error(models, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(InputError, match="none of the 2 samples could be read"):
        evaluate(F.image_model(tmp_path / "m.onnx", labels=["a", "b", "c"]), tmp_path / "data", _opts())


def test_size_counts_external_data(tmp_path: Path) -> None:
    path = F.image_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    data = tmp_path / "ext.onnx.data"
    assert data.stat().st_size > 0
    assert model_bytes(tmp_path / "ext.onnx") == (tmp_path / "ext.onnx").stat().st_size + data.stat().st_size


def test_metrics_with_an_other_column() -> None:
    truth = np.array([0, 0, 1, 1, 1])
    predicted = np.array([0, -1, 1, 0, 1])  # -1: a model class that is not a data class
    cm = confusion_matrix(truth, predicted, 2)
    assert cm.tolist() == [[1, 0, 1], [1, 2, 0]]
    rows = per_class(cm, ["a", "b"])
    assert (rows[0].precision, rows[0].recall) == (0.5, 0.5) and rows[1].recall == pytest.approx(2 / 3)
    assert macro_f1(rows) == pytest.approx((0.5 + 0.8) / 2)
    assert [(c["true"], c["predicted"]) for c in worst_confusions(cm, ["a", "b"])] == [("a", OTHER), ("b", "a")]


def test_class_matching_is_loose_but_never_ambiguous(tmp_path: Path) -> None:
    assert normalise("Golden_Retriever ") == normalise("golden-retriever") == "golden retriever"
    data = SimpleNamespace(classes=["Cat", "dog"], kind="images", path=tmp_path)
    assert match_classes(data, ["dog", "cat"], model="m").tolist() == [1, 0]
    data.classes = ["cat", "Cat"]
    with pytest.raises(InputError, match="both match 'cat'"):
        match_classes(data, ["cat", "dog"], model="m")
