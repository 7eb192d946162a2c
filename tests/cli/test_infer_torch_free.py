"""``edgecv infer`` works with torch blocked: image, folder, video and text through the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
import _infer_fixtures as F  # noqa: E402

BLOCK = "import sys; sys.modules['torch'] = None; from edgecv.cli import main; main({args!r})"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("torchfree")
    F.write_images(d / "imgs", ["red", "blue", "green"])
    return {"model": F.image_model(d / "m.onnx"), "text": F.text_model(d / "t.onnx", attention=True),
            "video": F.write_video(d / "v.mp4", F.video_colours(15)), "imgs": d / "imgs", "dir": d}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    code = BLOCK.format(args=args)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["image", "folder", "video", "text"])
def test_infer_without_torch(files, kind):
    out = files["dir"] / f"{kind}.jsonl"
    inputs = {
        "image": [str(next(files["imgs"].glob("000_*.png")))],
        "folder": [str(files["imgs"])],
        "video": [str(files["video"])],
        "text": ["--text", "the movie was great", "--text", "awful", "--show-attention"],
    }[kind]
    model = files["text"] if kind == "text" else files["model"]
    proc = _run(["infer", str(model), *inputs, "--provider", "cpu", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert "torch" not in proc.stderr.lower()
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == {"image": 1, "folder": 3, "video": 15, "text": 2}[kind]
    if kind == "text":
        assert [r["top_k"][0]["label"] for r in rows] == ["positive", "negative"]
        assert "attends" in proc.stdout or "->" in proc.stdout
    else:
        assert all(r["top_k"][0]["label"] in F.COLOURS for r in rows)


def test_import_runtimes_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import edgecv, edgecv.runtimes; "
            "import edgecv.runtimes.streaming.stream, edgecv.runtimes.streaming.sources, edgecv.runtimes.streaming.outputs, "
            "edgecv.runtimes.attention_view, edgecv.commands.infer; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
