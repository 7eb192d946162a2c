"""The stages of :func:`edgecv.exporters.pipeline.run_export`, one function each.

Every stage works in the run's scratch folder and returns a :class:`StageOutcome`: what it made
and how it compared with the PyTorch reference. Nothing is written beside the output until
:func:`write_files`, which embeds each file's contract; the pipeline builds the report rows after
that, when the written files have their final sizes.
"""
from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgecv.exporters import quantize as _quantize
from edgecv.exporters.onnx_export import count_nodes, export_onnx, file_size, save_onnx
from edgecv.exporters.samples import SampleSet
from edgecv.exporters.simplify import simplify
from edgecv.exporters.source import ExportSource
from edgecv.exporters.verify import (
    FP16_MIN_TOP1,
    INT8_WARN_TOP1,
    ParityResult,
    Reference,
    verify_onnx,
)

from edgecv.contract import ModelContract, embed_contract
from edgecv.errors import EdgecvError

REDUCED = ("fp16", "int8")  # stages that convert the deployed fp32 graph


@dataclass(frozen=True)
class ExportRun:
    """What every stage of one export needs: the model, its reference outputs and where to work."""

    source: ExportSource
    reference: Reference
    paths: dict[str, Path]  # final file names (see ``output_paths``)
    scratch: Path  # hidden folder beside the output, removed when the run ends
    say: Callable[[str], None]
    opset: int
    exporter: str
    attention: bool  # the text model also returns its attention weights
    calib: SampleSet | None  # int8 calibration images (image models only), none of them a parity sample
    # The fp32 tolerances are handed in by the pipeline, which reads them when the run starts
    # (so a caller can tighten them on the pipeline module).
    fp32_atol: float
    fp32_rtol: float


@dataclass(frozen=True)
class StageOutcome:
    """One stage's result while its graph is still in the scratch folder."""

    stage: str  # "fp32" | "simplified" | "fp16" | "int8"
    status: str  # as in the report row
    graph: Path | None = None  # the stage's graph in the scratch folder
    dest: Path | None = None  # where that graph is written; None: not kept or nothing to write
    size: int | None = None  # size in the scratch folder (the written file's size replaces it)
    nodes: int | None = None
    seconds: float | None = None
    parity: dict[str, Any] | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)  # this stage's additions to the contract

    @property
    def precision(self) -> str:
        return self.stage if self.stage in REDUCED else "fp32"


def verify_fp32(run: ExportRun, path: Path, *, stage: str = "fp32") -> ParityResult:
    """fp32 graphs must match PyTorch element-wise and in every top-1 decision."""
    return verify_onnx(path, run.reference, stage=stage, atol=run.fp32_atol, rtol=run.fp32_rtol,
                       min_top1=1.0)


def export_fp32(run: ExportRun) -> StageOutcome:
    """Export the model and verify it; a parity failure still gives a graph to write (marked failed)."""
    source = run.source
    run.say(f"exporting {source.architecture} (opset {run.opset}, {run.exporter})")
    start = time.perf_counter()
    raw = export_onnx(source.model, run.scratch / "fp32.onnx", opset=run.opset, task=source.task,
                      input_shape=source.input_shape, return_attention=run.attention,
                      exporter=run.exporter)
    seconds = time.perf_counter() - start
    parity = verify_fp32(run, raw)
    return StageOutcome("fp32", "ok" if parity.passed else "failed", graph=raw, dest=run.paths["fp32"],
                        size=file_size(raw), nodes=graph_nodes(raw), seconds=seconds,
                        parity=parity.to_dict(), note=parity.error)


@dataclass
class _SimplifiedCheck:
    """The simplifier's acceptance test; remembers the parity of the graph it judged last."""

    run: ExportRun
    result: ParityResult | None = None

    def __call__(self, path: Path) -> str | None:
        self.result = verify_fp32(self.run, path, stage="simplified")
        return None if self.result.passed else (self.result.error or "parity failed")


def simplify_fp32(run: ExportRun, fp32: StageOutcome) -> StageOutcome:
    """Simplify the fp32 graph; the result is kept (written as the main model) only if it passes
    the same parity check, else the row says why and the unsimplified graph stays."""
    run.say("simplifying with onnxsim")
    check = _SimplifiedCheck(run)
    sim = simplify(fp32.graph, run.scratch / "simplified.onnx", check=check)
    if not sim.applied or check.result is None:
        return StageOutcome("simplified", "not kept", nodes=sim.nodes_before, seconds=sim.seconds,
                            note=sim.reason)
    graph = Path(sim.path)
    return StageOutcome("simplified", "ok", graph=graph, dest=run.paths["fp32"], size=file_size(graph),
                        nodes=sim.nodes_after, seconds=sim.seconds, parity=check.result.to_dict(),
                        note=f"nodes {sim.nodes_before} -> {sim.nodes_after}")


def convert_fp16(run: ExportRun, src: Path, dst: Path) -> dict[str, Any]:
    run.say("converting to float16")
    return _quantize.quantize_fp16(src, dst)


def convert_int8(run: ExportRun, src: Path, dst: Path) -> dict[str, Any]:
    """Static QDQ for image models (calibrated on images of --data that the parity check does
    not use), dynamic for text models."""
    calibrating = f" (calibrating on {len(run.calib)} images from {run.calib.source})" if run.calib else " (dynamic)"
    run.say("quantizing to int8" + calibrating)
    if run.source.task == "image":
        return _quantize.quantize_int8_static(src, dst, samples=run.calib, spec=run.source.spec)
    return _quantize.quantize_int8_dynamic(src, dst)


# stage -> (converter, top-1 agreement needed to pass, top-1 agreement below which to warn)
_REDUCED_STAGES: dict[str, tuple[Callable[[ExportRun, Path, Path], dict[str, Any]],
                                 float | None, float | None]] = {
    "fp16": (convert_fp16, FP16_MIN_TOP1, None),
    "int8": (convert_int8, None, INT8_WARN_TOP1),
}


def reduced_stage(run: ExportRun, stage: str, src: Path) -> StageOutcome:
    """Convert the deployed fp32 graph to ``stage`` ("fp16" or "int8") and verify it on agreement
    only; a conversion error is an "error" row, not a crash, so the fp32 model is still written."""
    convert, min_top1, warn_top1 = _REDUCED_STAGES[stage]
    tmp = run.scratch / f"{stage}.onnx"
    try:
        info = convert(run, src, tmp)
    except EdgecvError as exc:
        return StageOutcome(stage, "error", note=f"error: {exc}")
    parity = verify_onnx(tmp, run.reference, stage=stage, atol=None, min_top1=min_top1,
                         warn_top1=warn_top1)
    details = {k: v for k, v in info.items() if k not in ("path", "seconds")}
    status = ("warning" if parity.warning else "ok") if parity.passed else "failed"
    return StageOutcome(stage, status, graph=tmp, dest=run.paths[stage], size=file_size(tmp),
                        nodes=graph_nodes(tmp), seconds=info.get("seconds"), parity=parity.to_dict(),
                        note=parity.error or parity.warning, details=details,
                        export={"quantization" if stage == "int8" else "fp16": details})


def write_files(run: ExportRun, outcomes: list[StageOutcome]) -> None:
    """Embed each kept graph's contract and move it into place; the main model goes last, so it
    appears only once all the others are there."""
    main = next(o for o in outcomes if o.precision == "fp32" and o.dest is not None)
    fp32 = next(o for o in outcomes if o.stage == "fp32")
    export = export_settings(run, simplified=main.stage == "simplified", nodes_before=fp32.nodes)
    for outcome in [o for o in outcomes if o.precision != "fp32"] + [main]:
        if outcome.graph is not None and outcome.dest is not None:
            contract = stage_contract(run, {**export, **outcome.export}, outcome)
            write_with_contract(outcome.graph, outcome.dest, contract)


def export_settings(run: ExportRun, *, simplified: bool, nodes_before: int | None) -> dict[str, Any]:
    """The contract's ``export`` entry shared by every file of this run."""
    source = run.source
    return {"opset": run.opset, "exporter": run.exporter, "simplified": simplified,
            "dynamic_axes": dynamic_axes(source.task, run.attention),
            "source": Path(source.source).name if source.source != "random init" else None,
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "nodes_before_simplify": nodes_before}


def stage_contract(run: ExportRun, export: dict[str, Any], outcome: StageOutcome) -> ModelContract:
    """The contract of one file: the model's facts plus this file's precision and parity."""
    source = run.source
    io = {"input": "input_ids" if source.task == "text" else "input", "output": "logits",
          "probabilities": False, "attention": "attention" if run.attention else None}
    return ModelContract(task=source.task, labels=list(source.labels), architecture=source.architecture,
                         model_kwargs=dict(source.model_kwargs), preprocess=source.spec,
                         tokenizer=source.tokenizer.to_dict() if source.tokenizer is not None else None,
                         io=io, export={**export, "precision": outcome.precision},
                         versions=library_versions(), parity=dict(outcome.parity or {}),
                         max_seq_len=source.max_len if source.task == "text" else None)


def write_with_contract(tmp: Path, dest: Path, contract: ModelContract) -> None:
    import onnx

    model = onnx.load(str(tmp))
    embed_contract(model, contract)
    save_onnx(model, dest)


def graph_nodes(path: Path) -> int:
    import onnx

    return count_nodes(onnx.load(str(path), load_external_data=False))


def dynamic_axes(task: str, attention: bool) -> dict[str, dict[str, str]]:
    """The axes the export leaves dynamic (recorded in the contract)."""
    if task == "text":
        axes = {"input_ids": {"0": "batch", "1": "sequence"}, "logits": {"0": "batch"}}
        if attention:
            # attention output: (N, layers, heads, T, T)
            axes["attention"] = {"0": "batch", "3": "sequence", "4": "sequence"}
        return axes
    return {"input": {"0": "batch"}, "logits": {"0": "batch"}}


def library_versions() -> dict[str, Any]:
    """Versions recorded in the contract, so a parity figure can be traced to what produced it."""
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
