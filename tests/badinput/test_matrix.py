"""A tester's matrix of bad inputs and faults, run through the real ``edgecv`` command.

Every case must end the same way: the documented exit code (1 for a failure, 2 for a usage
error), no traceback, and exactly one line on stderr that names the input and says what was
expected. The cases are grouped by kind: missing, empty, corrupt, truncated, wrong type, wrong
shape, bad values, unwritable destinations.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtimes"))
from _cli import assert_clean_failure, run_edgecv  # noqa: E402
from _infer_fixtures import image_model, text_model, write_images  # noqa: E402


@dataclass
class Env:
    """Files shared by the cases (made once per module)."""

    root: Path
    model: Path
    text_model: Path
    fixed_batch: Path
    images: Path
    image: Path
    checkpoint: Path
    shapes: Path
    files: dict[str, Path] = field(default_factory=dict)

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.root / "made" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("matrix")
    images = root / "images"
    write_images(images, ["red", "green", "blue"], nested=False)
    image = sorted(images.iterdir())[0]
    shapes = root / "shapes"
    for cls in ("a", "b"):
        for i in range(4):
            (shapes / cls).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(shapes / cls / f"{i}.png"), np.full((12, 12, 3), 40 + 100 * (cls == "b"), np.uint8))
    return Env(root, image_model(root / "model.onnx"), text_model(root / "text.onnx"),
               image_model(root / "fixed.onnx", batch=1), images, image, _checkpoint(root / "best.pt"), shapes)


def _checkpoint(path: Path, *, channels: int = 3) -> Path:
    import torch

    from edgecv.models import create_model
    from edgecv.models.checkpoint import save_checkpoint
    from edgecv.preprocess import default_spec

    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=2, in_channels=channels, input_size=16)
    return save_checkpoint({"model": model.edgecv_name, "model_kwargs": model.edgecv_kwargs, "task": "image",
                            "state_dict": model.state_dict(), "classes": ["a", "b"],
                            "preprocess": default_spec(size=16).to_dict(), "tokenizer": None}, path)


def _png_bytes() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _jpeg_bytes() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 14000000\n"

# (case id, exit code, argv builder -> (args, names the error must mention))
Case = Callable[[Env], tuple[list[object], list[object]]]
CASES: list[tuple[str, int, Case]] = [
    # --- infer: the model file
    ("infer-model-missing", 1, lambda e: ([ "infer", e.root / "nope.onnx", e.image], [e.root / "nope.onnx"])),
    ("infer-model-is-folder", 2, lambda e: (["infer", e.images, e.image], [e.images])),
    ("infer-model-empty", 1, lambda e: (["infer", e.file("empty.onnx", b""), e.image], ["empty.onnx"])),
    ("infer-model-random-bytes", 1, lambda e: (["infer", e.file("noise.onnx", bytes(range(256)) * 8), e.image],
                                               ["noise.onnx"])),
    ("infer-model-truncated", 1, lambda e: (["infer", e.file("half.onnx", e.model.read_bytes()[:200]), e.image],
                                            ["half.onnx"])),
    ("infer-model-lfs-pointer", 1, lambda e: (["infer", e.file("lfs.onnx", LFS), e.image], ["lfs.onnx"])),
    ("infer-model-is-png", 1, lambda e: (["infer", e.file("picture.onnx", _png_bytes()), e.image],
                                         ["picture.onnx"])),
    # --- infer: the inputs
    ("infer-image-missing", 1, lambda e: (["infer", e.model, e.root / "ghost.jpg"], ["ghost.jpg"])),
    ("infer-image-empty", 1, lambda e: (["infer", e.model, e.file("empty.jpg", b"")], ["empty.jpg"])),
    ("infer-image-truncated", 1, lambda e: (["infer", e.model, e.file("cut.jpg", _jpeg_bytes()[:40])],
                                            ["cut.jpg"])),
    ("infer-image-is-text", 1, lambda e: (["infer", e.model, e.file("notes.jpg", "hello, not a picture\n")],
                                          ["notes.jpg"])),
    ("infer-folder-without-images", 1, lambda e: (["infer", e.model, _empty_dir(e, "nothing")], ["nothing"])),
    ("infer-text-to-image-model", 1, lambda e: (["infer", e.model, "--text", "good movie"], [e.model])),
    ("infer-image-to-text-model", 1, lambda e: (["infer", e.text_model, e.image], [e.text_model])),
    ("infer-text-file-missing", 2, lambda e: (["infer", e.text_model, "--text-file", e.root / "no.txt"],
                                              ["no.txt"])),
    ("infer-text-file-empty", 1, lambda e: (["infer", e.text_model, "--text-file", e.file("blank.txt", "\n\n")],
                                            ["blank.txt"])),
    ("infer-labels-missing", 1, lambda e: (["infer", e.model, e.image, "--labels", e.root / "labels.txt"],
                                           ["labels.txt"])),
    ("infer-labels-wrong-count", 1, lambda e: (["infer", e.model, e.image, "--labels",
                                                e.file("two.txt", "cat\ndog\n")], ["two.txt"])),
    ("infer-labels-binary", 1, lambda e: (["infer", e.model, e.image, "--labels",
                                           e.file("bin.txt", b"\xff\xfe\x00\x81" * 20)], ["bin.txt"])),
    ("infer-size-zero", 2, lambda e: (["infer", e.fixed_batch, e.image, "--size", "0,4"],
                                                              ["--size"])),
    # --- infer: bad option values (usage errors)
    ("infer-threads-zero", 2, lambda e: (["infer", e.model, e.image, "--threads", "0"], ["--threads"])),
    ("infer-top-k-zero", 2, lambda e: (["infer", e.model, e.image, "--top-k", "0"], ["--top-k"])),
    ("infer-batch-size-negative", 2, lambda e: (["infer", e.model, e.image, "--batch-size", "-3"],
                                                ["--batch-size"])),
    ("infer-provider-unknown", 2, lambda e: (["infer", e.model, e.image, "--provider", "gpu9"], ["--provider"])),
    ("infer-smooth-out-of-range", 2, lambda e: (["infer", e.model, e.image, "--smooth", "1.5"], ["--smooth"])),
    ("infer-no-input-at-all", 2, lambda e: (["infer", e.model], [])),
    # --- infer: unwritable destinations
    ("infer-json-into-proc", 1, lambda e: (["infer", e.model, e.image, "--json", "/proc/edgecv/out.jsonl"],
                                           ["out.jsonl"])),
    ("infer-csv-under-a-file", 1, lambda e: (["infer", e.model, e.image, "--csv", e.image / "out.csv"],
                                             ["out.csv"])),
    ("infer-report-is-a-folder", 2, lambda e: (["infer", e.model, e.image, "--report", e.images], [e.images])),
    # --- profile
    ("profile-model-missing", 1, lambda e: (["profile", e.root / "gone.onnx"], ["gone.onnx"])),
    ("profile-model-corrupt", 1, lambda e: (["profile", e.file("junk.onnx", b"\x08\x01junk" * 50)],
                                            ["junk.onnx"])),
    ("profile-fixed-batch-asked-for-4", 1, lambda e: (["profile", e.fixed_batch, "--batch", "4", "--runs", "2"],
                                                      ["fixed.onnx"])),
    ("profile-shape-unknown-input", 1, lambda e: (["profile", e.model, "--shape", "nope=1,3,8,8", "--runs", "2"],
                                                  ["nope"])),
    ("profile-runs-zero", 1, lambda e: (["profile", e.model, "--runs", "0"], ["--runs"])),
    ("profile-duration-negative", 1, lambda e: (["profile", e.model, "--duration", "-1"], ["--duration"])),
    ("profile-pipeline-video-missing", 1, lambda e: (["profile", e.model, "--pipeline", e.root / "clip.mp4",
                                                      "--runs", "2"], ["clip.mp4"])),
    ("profile-batch-not-a-number", 2, lambda e: (["profile", e.model, "--batch", "one"], ["--batch"])),
    ("profile-markdown-into-sys", 1, lambda e: (["profile", e.model, "--runs", "2", "--markdown",
                                                 "/sys/edgecv/report.md"], ["report.md"])),
    # --- inspect
    ("inspect-unknown-architecture", 1, lambda e: (["inspect", "mobilenet_v9"], ["mobilenet_v9"])),
    ("inspect-activations-image-missing", 1, lambda e: (["inspect", e.model, "--activations", e.root / "x.png",
                                                         "--layer", "logits", "-o", e.root / "m.png"], ["x.png"])),
    ("inspect-checkpoint-random-bytes", 1, lambda e: (["inspect", e.file("noise.pt", bytes(range(256)) * 4)],
                                                      ["noise.pt"])),
    ("inspect-checkpoint-truncated", 1, lambda e: (["inspect", e.file("cut.pt", e.checkpoint.read_bytes()[:300])],
                                                   ["cut.pt"])),
    # --- export
    ("export-checkpoint-missing", 1, lambda e: (["export", e.root / "none.pt", "-o", e.root / "o.onnx"],
                                                ["none.pt"])),
    ("export-checkpoint-truncated", 1, lambda e: (["export", e.file("half.pt", e.checkpoint.read_bytes()[:500]),
                                                   "-o", e.root / "o.onnx"], ["half.pt"])),
    ("export-checkpoint-is-onnx", 1, lambda e: (["export", e.model, "-o", e.root / "o.onnx"], [e.model])),
    ("export-data-missing", 1, lambda e: (["export", e.checkpoint, "-o", e.root / "o.onnx", "--int8", "--data",
                                           e.root / "nodata"], ["nodata"])),
    ("export-checkpoint-spec-misfits-network", 1, lambda e: (["export", _checkpoint(e.root / "made" / "gray.pt",
                                                                            channels=1), "-o", e.root / "o.onnx"],
                                                              ["gray.pt"])),
    ("export-output-under-a-file", 1, lambda e: (["export", e.checkpoint, "-o", e.image / "model.onnx"],
                                                 ["model.onnx"])),
    ("export-output-into-proc", 1, lambda e: (["export", e.checkpoint, "-o", "/proc/edgecv/model.onnx"],
                                              ["model.onnx"])),
    # --- train
    ("train-data-missing", 2, lambda e: (["train", e.root / "nodata", "--model", "simple_cnn", "--out",
                                          e.root / "r1"], ["nodata"])),
    ("train-data-empty-folder", 1, lambda e: (["train", _empty_dir(e, "void"), "--model", "simple_cnn", "--out",
                                               e.root / "r2"], ["void"])),
    ("train-one-class", 1, lambda e: (["train", _one_class(e), "--model", "simple_cnn", "--out", e.root / "r3"],
                                      ["oneclass"])),
    ("train-csv-empty", 1, lambda e: (["train", e.file("empty.csv", ""), "--model", "lstm_classifier", "--out",
                                       e.root / "r4"], ["empty.csv"])),
    ("train-csv-binary", 1, lambda e: (["train", e.file("garbage.csv", b"\x00\xff\xfe" * 100), "--model",
                                        "lstm_classifier", "--out", e.root / "r5"], ["garbage.csv"])),
    ("train-csv-missing-label-column", 1, lambda e: (["train", e.file("nolabel.csv", "text\nhello\nworld\n"),
                                                      "--model", "lstm_classifier", "--out", e.root / "r6"],
                                                     ["label"])),
    ("train-unknown-model", 1, lambda e: (["train", e.shapes, "--model", "resnet9000", "--out", e.root / "r7"],
                                          ["resnet9000"])),
    ("train-weights-missing", 2, lambda e: (["train", e.shapes, "--model", "simple_cnn", "--weights",
                                             e.root / "w.pth", "--out", e.root / "r8"], ["w.pth"])),
    ("train-weights-random-bytes", 1, lambda e: (["train", e.shapes, "--model", "simple_cnn", "--weights",
                                                  e.file("w.pth", bytes(range(256)) * 4), "--out", e.root / "r9"],
                                                 ["w.pth"])),
    ("train-resume-not-a-checkpoint", 1, lambda e: (["train", "--resume", e.file("last.pt", "not a checkpoint")],
                                                    ["last.pt"])),
    ("train-out-into-sys", 1, lambda e: (["train", e.shapes, "--model", "simple_cnn", "--out", "/sys/edgecv/run"],
                                         ["run"])),
    ("train-lr-zero", 2, lambda e: (["train", e.shapes, "--model", "simple_cnn", "--lr", "0"], ["--lr"])),
    ("train-val-split-one", 2, lambda e: (["train", e.shapes, "--model", "simple_cnn", "--val-split", "1"],
                                          ["--val-split"])),
    # --- models / demo
    ("inspect-models-typo", 1, lambda e: (["inspect", "squeezenet9", "--json"], ["squeezenet9"])),
    ("demo-out-is-a-file", 2, lambda e: (["demo", "--out", e.image, "--quick"], [e.image])),
    ("demo-unknown-model", 1, lambda e: (["demo", "--out", e.root / "d", "--model", "lstm_classifier", "--quick"],
                                         ["lstm_classifier"])),
]


def _empty_dir(e: Env, name: str) -> Path:
    path = e.root / "made" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _one_class(e: Env) -> Path:
    folder = e.root / "made" / "oneclass" / "only"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    return folder.parent


def test_the_matrix_is_broad() -> None:
    assert len(CASES) >= 60
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, code, build", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_line(env: Env, name: str, code: int, build: Case) -> None:
    args, names = build(env)
    proc = run_edgecv(*map(str, args), cwd=env.root)
    assert_clean_failure(proc, code=code, names=[str(n) for n in names])
