"""The stages of :func:`edgecv.exporters.pipeline.run_export`, one function each.

Every stage works in the run's scratch folder and returns a :class:`StageOutcome`: what it made
and how it compared with the PyTorch reference. Nothing is written beside the output until
:func:`write_files`, which embeds each file's contract; the pipeline builds the report rows after
that, when the written files have their final sizes.
"""
from __future__ import annotations

import datetime as _dt
import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgecv.contract import ModelContract, embed_contract
from edgecv.errors import EdgecvError
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

REDUCED = ("fp16", "int8")  # stages that convert the deployed fp32 graph
# int8 earns its place only when it is at least this much faster than fp32 at every batch size
# measured: a file as fast as fp32 but less accurate is no reason to ship int8.
INT8_MIN_SPEEDUP = 1.05


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
    # int8 vs fp32 latency on this machine (None threads: every usable core)
    speed_check: bool = True
    speed_threads: int | None = None
    speed_batches: tuple[int, ...] = (1, 8)


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
        info = _quantize.quantize_int8_static(src, dst, samples=run.calib, spec=run.source.spec)
    else:
        info = _quantize.quantize_int8_dynamic(src, dst)
    if run.speed_check:
        info["speed"] = int8_speed(run, src, dst, info)
    return info


def _speed_feeds(run: ExportRun) -> Callable[[int], dict[str, np.ndarray]]:
    """Inputs of any batch size made of the real parity samples (tiled when there are fewer)."""
    batches = run.reference.batches
    pool = max(batches, key=len) if run.source.task == "text" else np.concatenate(batches)
    name = "input_ids" if run.source.task == "text" else "input"

    def feeds(batch: int) -> dict[str, np.ndarray]:
        reps = -(-batch // len(pool))
        return {name: np.ascontiguousarray(np.concatenate([pool] * reps)[:batch])}

    return feeds


def _timings(run: ExportRun, fp32: Path, int8: Path) -> list[dict[str, Any]]:
    from edgecv.runtimes.profiling.ab_timing import compare_latency

    pairs = compare_latency(fp32, int8, _speed_feeds(run), batches=run.speed_batches, threads=run.speed_threads)
    return [p.to_dict("fp32", "int8") for p in pairs]


def _worst(rows: list[dict[str, Any]]) -> float:
    return min(r["speedup"] for r in rows)


def int8_speed(run: ExportRun, fp32: Path, int8: Path, info: dict[str, Any]) -> dict[str, Any]:
    """int8 vs fp32 latency on this machine (same threads, interleaved runs, medians). When int8
    is not faster, quantize again with the operators that have no int8 kernel (and the Mul
    they feed) left in float, measure again and keep the faster int8 file; if int8 is still not
    faster, the result carries one warning line that recommends fp32."""
    from edgecv.hardware import usable_cores

    threads = run.speed_threads or usable_cores()
    run = replace(run, speed_threads=threads)
    batches = ", ".join(map(str, run.speed_batches))
    run.say(f"timing int8 vs fp32 ({threads} thread{'s' if threads != 1 else ''}, batch {batches})")
    attempts = [{"variant": "every quantizable operator", "excluded": None, "latency": _timings(run, fp32, int8)}]
    if _worst(attempts[0]["latency"]) < INT8_MIN_SPEEDUP and run.source.task == "image":
        retry = run.scratch / "int8-float-ops.onnx"
        run.say("int8 is not faster: quantizing again with the operators that have no int8 kernel left in float")
        again = _quantize.quantize_int8_static(fp32, retry, samples=run.calib, spec=run.source.spec,
                                               exclude_float_ops=True)
        if again["excluded"]["nodes"]:
            attempts.append({"variant": "operators without int8 kernels left in float",
                             "excluded": again["excluded"], "latency": _timings(run, fp32, retry)})
            if _worst(attempts[1]["latency"]) > _worst(attempts[0]["latency"]):
                shutil.move(str(retry), str(int8))
                info["excluded"] = again["excluded"]
    chosen = max(range(len(attempts)), key=lambda i: _worst(attempts[i]["latency"]))
    faster = _worst(attempts[chosen]["latency"]) >= INT8_MIN_SPEEDUP
    result = {"threads": threads, "batches": list(run.speed_batches), "min_speedup": INT8_MIN_SPEEDUP,
              "attempts": attempts, "chosen": chosen, "faster": faster, "recommended": "int8" if faster else "fp32",
              "warning": None if faster else _slow_warning(run, attempts)}
    return result


def _slow_warning(run: ExportRun, attempts: list[dict[str, Any]]) -> str:
    """One line: how fast int8 is next to fp32, what was tried, which file to deploy instead."""
    best = max(attempts, key=lambda a: _worst(a["latency"]))
    speeds = ", ".join(f"{r['speedup']:.2f}x at batch {r['batch']}" for r in best["latency"])
    tried = ""
    if len(attempts) > 1:
        ops = ", ".join(f"{n} {op}" for op, n in attempts[1]["excluded"]["op_types"].items())
        tried = f", even with {attempts[1]['excluded']['nodes']} nodes without int8 kernels left in float ({ops})"
    return (f"int8 is not faster than fp32 on this CPU (int8 / fp32 speed: {speeds}; p50, {run.speed_threads} "
            f"threads){tried}; deploy {run.paths['fp32'].name} (fp32)")


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
                        export={"quantization" if stage == "int8" else "fp16": contract_details(details)})


def contract_details(details: dict[str, Any]) -> dict[str, Any]:
    """What the file's own contract records of its conversion: the settings and the speed
    verdict, without the per-node list and the per-attempt timings (the export report has them)."""
    out = {k: v for k, v in details.items() if k not in ("speed", "excluded")}
    if details.get("excluded"):
        out["excluded"] = {k: v for k, v in details["excluded"].items() if k != "names"}
    speed = details.get("speed")
    if speed:
        chosen = speed["attempts"][speed["chosen"]]["latency"]
        out["speed"] = {"threads": speed["threads"], "recommended": speed["recommended"],
                        "speedup": {str(r["batch"]): r["speedup"] for r in chosen}}
    return out


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
