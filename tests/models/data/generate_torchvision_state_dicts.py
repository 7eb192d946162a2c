"""Regenerate ``torchvision_state_dicts.json``: state-dict key -> shape of torchvision's builders.

torchvision is not an edgecv dependency; install it anywhere on PYTHONPATH just for this:

    pip download --no-deps -d /tmp/tv "torchvision==<matching your torch>"
    pip install --no-deps --target /tmp/tvlib /tmp/tv/torchvision-*.whl
    PYTHONPATH=/tmp/tvlib python tests/models/data/generate_torchvision_state_dicts.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torchvision
import torchvision.models as tvm

NAMES = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "squeezenet1_0", "squeezenet1_1")


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
