"""The model contract: what an exported ``.onnx`` says about itself (numpy/onnx only, no torch).

Stored in the ONNX ``metadata_props`` under keys prefixed ``edgecv.``; every value is a JSON
string. Schema (version 1, documented in docs/metadata.md):

    edgecv.schema_version  1
    edgecv.task            "image" | "text"          (image / text classification)
    edgecv.labels          ["cat", "dog", ...]       (index i -> class name)
    edgecv.architecture    "mobilenet_v2"            (registry name; null for foreign models)
    edgecv.model_kwargs    {"num_classes": 2, ...}
    edgecv.preprocess      PreprocessSpec.to_dict()  (image models)
    edgecv.tokenizer       WordTokenizer.to_dict()   (text models)
    edgecv.max_seq_len     64 | null                 (text models: longest token sequence the graph takes)
    edgecv.io              {"input": "input", "output": "logits", "probabilities": false,
                            "attention": null | "attention"}
    edgecv.export          {"opset": 17, "precision": "fp32", "simplified": true, ...}
    edgecv.versions        {"edgecv": ..., "torch": ..., "onnx": ..., "onnxruntime": ...}
    edgecv.parity          {"max_abs": ..., "top1_agreement": ..., "passed": true, ...}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgecv.errors import ModelError
from edgecv.preprocess import PreprocessSpec

SCHEMA_VERSION = 1
PREFIX = "edgecv."
TASKS = ("image", "text")


@dataclass
class ModelContract:
    """Everything ``infer`` and ``profile`` need to use a model without guessing."""

    task: str
    labels: list[str]
    architecture: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessSpec | None = None
    tokenizer: dict[str, Any] | None = None
    io: dict[str, Any] = field(
        default_factory=lambda: {"input": "input", "output": "logits", "probabilities": False, "attention": None}
    )
    export: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    # Text models: the longest token sequence the graph accepts. An attention model's learned
    # position table has exactly ``max_len`` rows, so a longer input fails inside ONNX Runtime
    # with a broadcast error; an LSTM has no such table, its ``max_len`` is the length it was
    # trained for. A model may declare it; otherwise it is the tokenizer's ``max_len`` (the
    # runtime never feeds more tokens than that). Null for image models.
    max_seq_len: int | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"model contract task {self.task!r}: expected one of {', '.join(TASKS)}")
        self._settle_max_seq_len()

    def _settle_max_seq_len(self) -> None:
        """Fill ``max_seq_len`` from the tokenizer when undeclared, and make the tokenizer truncate
        at it when declared lower, so the runtime never builds a sequence the graph cannot take."""
        declared = self.max_seq_len
        if declared is not None and (isinstance(declared, bool) or not isinstance(declared, int)
                                     or declared < 1):
            raise ModelError(f"model contract max_seq_len {declared!r}: expected a positive integer or null")
        tok_len = (self.tokenizer or {}).get("max_len")
        if not isinstance(tok_len, int) or isinstance(tok_len, bool) or tok_len < 1:
            return
        if declared is None:
            self.max_seq_len = tok_len
        elif tok_len > declared:
            self.tokenizer = {**self.tokenizer, "max_len": declared}  # type: ignore[dict-item]

    def to_metadata(self) -> dict[str, str]:
        """Flatten to ``{"edgecv.<field>": json}`` for ``onnx.ModelProto.metadata_props``."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PreprocessSpec):
                value = value.to_dict()
            out[PREFIX + f.name] = json.dumps(value, sort_keys=True)
        return out

    @classmethod
    def from_metadata(cls, props: dict[str, str], *, source: str = "model") -> ModelContract | None:
        """Parse ``metadata_props``; None when the model carries no edgecv contract (foreign model)."""
        if PREFIX + "schema_version" not in props:
            return None
        try:
            data = {k[len(PREFIX):]: json.loads(v) for k, v in props.items() if k.startswith(PREFIX)}
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: corrupt edgecv metadata ({exc})") from None
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ModelError(
                f"{source}: edgecv metadata schema {version!r} is newer than this edgecv supports "
                f"({SCHEMA_VERSION}); upgrade edgecv"
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("preprocess") is not None:
            kwargs["preprocess"] = PreprocessSpec.from_dict(kwargs["preprocess"])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ModelError(f"{source}: incomplete edgecv metadata ({exc})") from None
        except ModelError as exc:  # a value of the wrong kind: name the file it came from
            raise ModelError(f"{source}: {exc}") from None

    def describe(self) -> str:
        """Human-readable summary for ``edgecv inspect model.onnx``."""
        lines = [f"edgecv model contract (schema {self.schema_version})",
                 f"  task:          {self.task} classification",
                 f"  architecture:  {self.architecture or '-'}"]
        shown = ", ".join(self.labels[:10]) + (f", ... ({len(self.labels)} total)" if len(self.labels) > 10 else "")
        lines.append(f"  labels:        {shown}")
        if self.preprocess is not None:
            p = self.preprocess
            lines.append(
                f"  preprocess:    {p.size[0]}x{p.size[1]} {p.color} resize={p.resize}"
                f"{'(' + str(p.short_side) + ')' if p.resize == 'short_side' else ''} scale={p.scale:.6g} "
                f"mean={list(p.mean)} std={list(p.std)} layout={p.layout}"
            )
        if self.tokenizer is not None:
            t = self.tokenizer
            lines.append(f"  tokenizer:     {t.get('type', 'word')} vocab={len(t.get('vocab', []))} "
                         f"max_len={t.get('max_len')} lower={t.get('lower')}")
        if self.max_seq_len is not None:
            lines.append(f"  max_seq_len:   {self.max_seq_len} tokens (longer texts are truncated)")
        lines.append(f"  io:            {json.dumps(self.io, sort_keys=True)}")
        for name in ("export", "parity", "versions"):
            value = getattr(self, name)
            if value:
                lines.append(f"  {name + ':':<14} {json.dumps(value, sort_keys=True)}")
        return "\n".join(lines)


def embed_contract(model: Any, contract: ModelContract) -> None:
    """Replace any ``edgecv.*`` entries of an ``onnx.ModelProto`` with ``contract``'s."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in keep + sorted(contract.to_metadata().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def contract_from_model(model: Any, *, source: str = "model") -> ModelContract | None:
    """The contract of a loaded ``onnx.ModelProto`` (None for foreign models)."""
    return ModelContract.from_metadata({p.key: p.value for p in model.metadata_props}, source=source)


def contract_from_session(session: Any, *, source: str = "model") -> ModelContract | None:
    """The contract via an ONNX Runtime session's ``custom_metadata_map`` (no second file read)."""
    return ModelContract.from_metadata(dict(session.get_modelmeta().custom_metadata_map), source=source)


def read_contract(path: str | os.PathLike[str]) -> ModelContract | None:
    """Read only what is needed from an ``.onnx`` file (weights in external data are not loaded)."""
    from edgecv.onnx_file import load_onnx

    return contract_from_model(load_onnx(path, load_external_data=False), source=str(Path(path)))
