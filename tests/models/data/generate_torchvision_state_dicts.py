"""Regenerate ``torchvision_state_dicts.json``: state-dict key -> shape of torchvision's builders.

torchvision is not an edgecv dependency, and PyPI's torchvision may not load beside the torch of
the project's venv. Use a throwaway venv outside the repository with a matching pair:

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    /tmp/tvenv/bin/python tests/models/data/generate_torchvision_state_dicts.py

Only torchvision is imported here (not edgecv), so no PYTHONPATH is needed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torchvision
import torchvision.models as tvm

NAMES = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet50",
         "squeezenet1_0", "squeezenet1_1")


def main() -> None:
    data = {"torchvision_version": torchvision.__version__, "models": {}}
    for name in NAMES:
        state = getattr(tvm, name)(num_classes=1000).state_dict()
        data["models"][name] = {key: list(value.shape) for key, value in state.items()}
    out = Path(__file__).with_name("torchvision_state_dicts.json")
    # One key per line (readable diffs), shapes inline.
    lines = ["{", f'"torchvision_version": {json.dumps(data["torchvision_version"])},', '"models": {']
    for i, (name, shapes) in enumerate(data["models"].items()):
        rows = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()]
        comma = "," if i < len(data["models"]) - 1 else ""
        lines += [f"{json.dumps(name)}: {{", ",\n".join(rows), f"}}{comma}"]
    lines += ["}", "}"]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
