"""The export chain behind ``edgecv export``: fp32 -> simplified -> fp16 -> int8, each verified.

Order of work, chosen so that bad input fails before anything is written:

1. check options (output path, opset, ``--int8`` needs ``--data`` for image models) and pick the
   parity and calibration samples (``--data``, else random inputs, said so);
2. run the PyTorch model once over the parity samples: the reference for every stage;
3. export and verify fp32 at batch 1 and 3 (and two sequence lengths for text); simplify and keep
   the simplified graph only if it passes the same check; then fp16 / int8 copies, each verified;
4. embed each file's contract (its own precision and parity figures) and move the files into
   place, then write ``<model>.export.json`` with the report.

All intermediate files live in a hidden scratch folder beside the output and are removed on any
exit. A parity failure still writes the files (marked failed in contract and report) so they can
be inspected; ``ExportReport.passed`` is then False and the CLI exits 1.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgecv.exporters import quantize as _quantize
from edgecv.exporters.onnx_export import (
    DEFAULT_OPSET,
    check_opset,
    count_nodes,
    export_onnx,
    file_size,
    save_onnx,
    scratch_dir,
    supports_attention,
)
from edgecv.exporters.samples import (
    SampleSet,
    describe_source,
    find_samples,
    random_samples,
)
from edgecv.exporters.simplify import simplify
from edgecv.exporters.source import ExportSource
from edgecv.exporters.verify import (
    FP16_MIN_TOP1,
    FP32_ATOL,
    FP32_RTOL,
    INT8_WARN_TOP1,
    ParityResult,
    torch_reference,
    verify_onnx,
)

from edgecv.contract import ModelContract, embed_contract
from edgecv.errors import EdgecvError, InputError


@dataclass
class ExportOptions:
    """What ``edgecv export`` was asked to do (the CLI fills this from its options)."""

    output: Path
    data: Path | None = None
    opset: int = DEFAULT_OPSET
    fp16: bool = False
    int8: bool = False
    calib_size: int = 300
    simplify: bool = True
    exporter: str = "torchscript"
    verify_size: int = 128  # parity samples from --data (random: 20)
    attention: bool = True  # export attention weights when the model can return them
    seed: int = 0


@dataclass
class StageReport:
    """One row of the report table."""

    stage: str  # "fp32" | "simplified" | "fp16" | "int8"
    file: str | None  # written file, None when this stage's graph was not kept
    status: str  # "ok" | "warning" | "failed" | "error" | "skipped" | "not kept"
    size: int | None = None
    nodes: int | None = None
    seconds: float | None = None
    parity: dict[str, Any] | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class ExportReport:
    output: Path
    report_path: Path
    task: str
    architecture: str
    samples: str  # description of the parity inputs
    stages: list[StageReport]
    warnings: list[str]
    passed: bool

    def stage(self, name: str) -> StageReport | None:
        """The row of one stage ("fp32", "simplified", "fp16", "int8"), or None if it did not run."""
        return next((s for s in self.stages if s.stage == name), None)

    def deployed_stage(self) -> StageReport | None:
        """The row of the file written as the main model (the simplified graph when it was kept)."""
        kept = self.stage("simplified")
        return kept if kept is not None and kept.file is not None else self.stage("fp32")

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "report": str(self.report_path), "task": self.task,
                "architecture": self.architecture, "samples": self.samples, "passed": self.passed,
                "warnings": self.warnings, "stages": [s.to_dict() for s in self.stages]}


def output_paths(output: Path) -> dict[str, Path]:
    """Fixed names beside the model: model.onnx, model.fp16.onnx, model.int8.onnx, model.export.json."""
    stem = output.name[:-5] if output.name.lower().endswith(".onnx") else output.name
    return {"fp32": output, "fp16": output.with_name(stem + ".fp16.onnx"),
            "int8": output.with_name(stem + ".int8.onnx"), "report": output.with_name(stem + ".export.json")}


def check_options(source: ExportSource, opts: ExportOptions) -> None:
    """Every check that can fail on user input, before any work or write."""
    out = Path(opts.output)
    if out.is_dir() or str(opts.output).endswith(("/", os.sep)):
        raise InputError(f"-o {out}: is a directory; expected a file path such as {out / 'model.onnx'}")
    if out.exists() and not out.is_file():
        raise InputError(f"-o {out}: exists and is not a regular file")
    check_opset(opts.opset, exporter=opts.exporter)
    if opts.calib_size < 1:
        raise InputError(f"--calib-size {opts.calib_size}: expected >= 1")
    if opts.int8 and source.task == "image" and opts.data is None:
        raise InputError("--int8 for an image model needs calibration images: pass --data DIR "
                         "(a folder of representative images, a few hundred are enough)")
    if opts.data is not None and not Path(opts.data).exists():
        raise InputError(f"--data {opts.data}: not found (expected an image folder or a .csv/.tsv/.jsonl file)")


def run_export(source: ExportSource, opts: ExportOptions, *,
               progress: Callable[[str], None] | None = None) -> ExportReport:
    """Run the whole chain and write the files; see the module docstring for the order.

    ``progress(message)`` is called as each step starts (the CLI shows it on a terminal).
    """
    say = progress or (lambda _msg: None)
    check_options(source, opts)
    paths = output_paths(Path(opts.output))
    warnings = list(source.warnings)
    samples = _parity_samples(source, opts)
    calib = None
    if opts.int8 and source.task == "image":
        calib = find_samples(opts.data, task="image", labels=source.labels, limit=opts.calib_size,
                             seed=opts.seed + 1)
    attention = opts.attention and source.task == "text" and supports_attention(source.model)
    say(f"PyTorch reference on {describe_source(samples)}")
    reference = torch_reference(source.model, samples, spec=source.spec, tokenizer=source.tokenizer,
                                max_len=source.max_len, return_attention=attention)
    if reference.logits.shape[1] != len(source.labels):
        raise InputError(f"{source.source}: model outputs {reference.logits.shape[1]} classes but "
                         f"{len(source.labels)} labels are known")
    if not samples.real:
        warnings.append("parity measured on random inputs (no --data given); pass --data for real samples")
    stages: list[StageReport] = []
    finals: dict[str, tuple[Path, ModelContract]] = {}
    with scratch_dir(paths["fp32"]) as scratch:
        # -- fp32 -----------------------------------------------------------------------------
        say(f"exporting {source.architecture} (opset {opts.opset}, {opts.exporter})")
        t0 = time.perf_counter()
        raw = export_onnx(source.model, scratch / "fp32.onnx", opset=opts.opset, task=source.task,
                          input_shape=source.input_shape, return_attention=attention,
                          exporter=opts.exporter)
        export_s = time.perf_counter() - t0
        fp32_parity = _fp32_verify(raw, reference)
        fp32_nodes = _nodes(raw)
        fp32_row = StageReport("fp32", None, "ok" if fp32_parity.passed else "failed",
                               size=file_size(raw), nodes=fp32_nodes, seconds=export_s,
                               parity=fp32_parity.to_dict(), note=fp32_parity.error)
        stages.append(fp32_row)
        chosen, chosen_parity, simplified = raw, fp32_parity, False
        # -- simplified -----------------------------------------------------------------------
        if opts.simplify:
            checked: dict[str, ParityResult] = {}

            def check(path: Path) -> str | None:
                checked["result"] = result = _fp32_verify(path, reference, stage="simplified")
                return None if result.passed else (result.error or "parity failed")

            say("simplifying with onnxsim")
            sim = simplify(raw, scratch / "simplified.onnx", check=check)
            if sim.applied:
                chosen, chosen_parity, simplified = Path(sim.path), checked["result"], True
                stages.append(StageReport("simplified", str(paths["fp32"]), "ok", size=file_size(chosen),
                                          nodes=sim.nodes_after, seconds=sim.seconds,
                                          parity=chosen_parity.to_dict(),
                                          note=f"nodes {sim.nodes_before} -> {sim.nodes_after}"))
            else:
                warnings.append(f"simplifier not used, keeping the unsimplified graph: {sim.reason}")
                stages.append(StageReport("simplified", None, "not kept", nodes=sim.nodes_before,
                                          seconds=sim.seconds, note=sim.reason))
        else:
            stages.append(StageReport("simplified", None, "skipped", note="--no-simplify"))
        fp32_row.file = None if simplified else str(paths["fp32"])
        if not fp32_parity.passed:
            warnings.append(f"fp32 export FAILED parity: {fp32_parity.error}")
        base_export = {"opset": opts.opset, "exporter": opts.exporter, "simplified": simplified,
                       "dynamic_axes": _dynamic_axes(source.task, attention),
                       "source": Path(source.source).name if source.source != "random init" else None,
                       "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                       "nodes_before_simplify": fp32_nodes}
        finals["fp32"] = (chosen, _contract(source, base_export, "fp32", chosen_parity, attention))
        # -- fp16 / int8 ----------------------------------------------------------------------
        if opts.fp16:
            say("converting to float16")
            row, contract = _reduced(
                "fp16", chosen, scratch / "fp16.onnx", paths["fp16"], reference,
                lambda s, d: _quantize.quantize_fp16(s, d), min_top1=FP16_MIN_TOP1, warn_top1=None)
            stages.append(row)
            if contract is not None:
                finals["fp16"] = (scratch / "fp16.onnx",
                                  _contract(source, {**base_export, **contract}, "fp16",
                                            row.parity, attention))
        if opts.int8:
            say("quantizing to int8" + (f" (calibrating on {len(calib)} images)" if calib else " (dynamic)"))
            if source.task == "image":
                def quant(s: Path, d: Path) -> dict[str, Any]:
                    return _quantize.quantize_int8_static(s, d, samples=calib, spec=source.spec)
            else:
                def quant(s: Path, d: Path) -> dict[str, Any]:
                    return _quantize.quantize_int8_dynamic(s, d)
            row, contract = _reduced("int8", chosen, scratch / "int8.onnx", paths["int8"], reference,
                                     quant, min_top1=None, warn_top1=INT8_WARN_TOP1)
            stages.append(row)
            if contract is not None:
                finals["int8"] = (scratch / "int8.onnx",
                                  _contract(source, {**base_export, **contract}, "int8",
                                            row.parity, attention))
        for row in stages:
            if row.parity and row.parity.get("warning"):
                warnings.append(f"{row.stage}: {row.parity['warning']}")
            if row.status in ("failed", "error") and row.stage in ("fp16", "int8"):
                warnings.append(f"{row.stage} FAILED: {row.note}")
        # -- write ----------------------------------------------------------------------------
        for name in ("fp16", "int8", "fp32"):  # the main model last: it appears once all are there
            if name in finals:
                tmp, contract = finals[name]
                _write_with_contract(tmp, paths[name], contract)
        fp32_size = file_size(paths["fp32"])
    for row in stages:
        if row.file is not None and Path(row.file).exists():
            row.size = file_size(row.file)
            if row.stage in ("fp16", "int8") and fp32_size:
                row.details["size_ratio"] = round(row.size / fp32_size, 4)
    for name in ("fp16", "int8"):
        if name not in finals and paths[name].exists():
            warnings.append(f"{paths[name]} is left from an earlier export and was not rewritten; "
                            "delete it or export again with --" + name)
    # int8 below the agreement bar is only a warning; a failed fp32/fp16 check or any stage
    # error fails the command.
    passed = fp32_parity.passed and all(r.status not in ("failed", "error") for r in stages)
    report = ExportReport(output=paths["fp32"], report_path=paths["report"], task=source.task,
                          architecture=source.architecture, samples=describe_source(samples),
                          stages=stages, warnings=warnings, passed=passed)
    from edgecv.io import write_json_atomic

    write_json_atomic(paths["report"], report.to_dict())
    return report


def _parity_samples(source: ExportSource, opts: ExportOptions) -> SampleSet:
    if opts.data is not None:
        return find_samples(opts.data, task=source.task, labels=source.labels, limit=opts.verify_size,
                            seed=opts.seed)
    vocab = source.tokenizer.vocab_size if source.tokenizer is not None else 100
    seq = min(12, source.max_len or 12)
    return random_samples(task=source.task, n=20, input_shape=source.input_shape, vocab_size=vocab,
                          seq_len=seq, seed=opts.seed)


def _fp32_verify(path: Path, reference: Any, *, stage: str = "fp32") -> ParityResult:
    return verify_onnx(path, reference, stage=stage, atol=FP32_ATOL, rtol=FP32_RTOL, min_top1=1.0)


def _reduced(stage: str, src: Path, tmp: Path, final: Path, reference: Any, convert: Any, *,
             min_top1: float | None, warn_top1: float | None) -> tuple[StageReport, dict[str, Any] | None]:
    """Convert + verify one reduced-precision stage; a conversion error is a failed row, not a crash."""
    try:
        info = convert(src, tmp)
    except EdgecvError as exc:
        return StageReport(stage, None, "error", note=f"error: {exc}"), None
    parity = verify_onnx(tmp, reference, stage=stage, atol=None, min_top1=min_top1, warn_top1=warn_top1)
    details = {k: v for k, v in info.items() if k not in ("path", "seconds")}
    status = ("warning" if parity.warning else "ok") if parity.passed else "failed"
    row = StageReport(stage, str(final), status, size=file_size(tmp),
                      nodes=_nodes(tmp), seconds=info.get("seconds"), parity=parity.to_dict(),
                      note=parity.error or parity.warning, details=details)
    return row, {"quantization" if stage == "int8" else "fp16": details}


def _contract(source: ExportSource, export: dict[str, Any], precision: str,
              parity: ParityResult | dict[str, Any] | None, attention: bool) -> ModelContract:
    io = {"input": "input_ids" if source.task == "text" else "input", "output": "logits",
          "probabilities": False, "attention": "attention" if attention else None}
    parity_dict = parity.to_dict() if isinstance(parity, ParityResult) else dict(parity or {})
    return ModelContract(task=source.task, labels=list(source.labels), architecture=source.architecture,
                         model_kwargs=dict(source.model_kwargs), preprocess=source.spec,
                         tokenizer=source.tokenizer.to_dict() if source.tokenizer is not None else None,
                         io=io, export={**export, "precision": precision}, versions=_versions(),
                         parity=parity_dict)


def _write_with_contract(tmp: Path, dest: Path, contract: ModelContract) -> None:
    import onnx

    model = onnx.load(str(tmp))
    embed_contract(model, contract)
    save_onnx(model, dest)


def _nodes(path: Path) -> int:
    import onnx

    return count_nodes(onnx.load(str(path), load_external_data=False))


def _dynamic_axes(task: str, attention: bool) -> dict[str, dict[str, str]]:
    if task == "text":
        axes = {"input_ids": {"0": "batch", "1": "sequence"}, "logits": {"0": "batch"}}
        if attention:
            axes["attention"] = {"0": "batch", "3": "sequence", "4": "sequence"}
        return axes
    return {"input": {"0": "batch"}, "logits": {"0": "batch"}}


def _versions() -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch

    from edgecv._version import __version__

    out = {"edgecv": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
           "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}
    try:
        import onnxsim

        out["onnxsim"] = getattr(onnxsim, "__version__", None)
    except ImportError:
        out["onnxsim"] = None
    return out
