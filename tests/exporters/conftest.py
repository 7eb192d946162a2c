"""Fixtures for the exporter tests: synthetic data, tiny checkpoints and one briefly trained CNN.

The trained model matters for the fp16/int8 agreement checks: an untrained network's logits sit
within rounding noise of each other, so any precision change flips its top-1 at random.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from edgecv.data import read_text_table
from edgecv.demo.synthetic import make_shapes_dataset, make_text_dataset
from edgecv.models import create_model
from edgecv.preprocess import default_spec, load_image, preprocess_batch
from edgecv.tokenizer import WordTokenizer

sys.path.insert(0, str(Path(__file__).parent))
from _export_fixtures import IMAGE_SIZE, SHAPES, image_checkpoint, text_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread_for_exporter_tests(one_torch_thread: None) -> None:
    """Every exporter test runs with one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 50 coloured-shape images, 32 px (folder per class)."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "data", classes=SHAPES,
                               per_class=50, size=IMAGE_SIZE, seed=0)


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text_dataset(tmp_path_factory.mktemp("text") / "text.csv", n=120, seed=0)


@pytest.fixture(scope="session")
def tokenizer(text_csv: Path) -> WordTokenizer:
    return WordTokenizer.fit(read_text_table(text_csv).texts, max_len=24)


@pytest.fixture(scope="session")
def make_text_checkpoint(tmp_path_factory: pytest.TempPathFactory,
                         tokenizer: WordTokenizer) -> Callable[[str], Path]:
    """Untrained tiny text model checkpoints by architecture name."""
    root = tmp_path_factory.mktemp("text_ckpt")

    def build(name: str) -> Path:
        torch.manual_seed(0)
        model = create_model(name, vocab_size=tokenizer.vocab_size, num_classes=3, embed_dim=16,
                             **({"num_heads": 2, "ff_dim": 32, "max_len": 32}
                                if name == "attention_classifier" else {"hidden_size": 16}))
        return text_checkpoint(root / f"{name}.pt", model, tokenizer)

    return build


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory: pytest.TempPathFactory, shapes_dir: Path) -> Path:
    """simple_cnn (RGB, 32 px) trained for a few seconds on the shapes with a plain torch loop."""
    torch.manual_seed(0)
    spec = default_spec(size=IMAGE_SIZE)
    files = sorted(shapes_dir.rglob("*.png"))
    x = torch.from_numpy(preprocess_batch([load_image(f) for f in files], spec))  # (N, 3, 32, 32)
    y = torch.tensor([SHAPES.index(f.parent.name) for f in files])
    model = create_model("simple_cnn", num_classes=4, in_channels=3, input_size=IMAGE_SIZE, dropout=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures run before the module-scoped thread setting
    try:
        for _ in range(10):
            for idx in torch.randperm(len(x), generator=gen).split(32):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        train_acc = float((model(x).argmax(1) == y).float().mean())
    assert train_acc > 0.6, f"test model failed to train (accuracy {train_acc:.2f})"
    return image_checkpoint(tmp_path_factory.mktemp("trained") / "cnn.pt", model)
