"""The export chain behind ``edgecv export``: fp32 -> simplified -> fp16 -> int8, each verified.

Order of work, chosen so that bad input fails before anything is written:

1. check options (every output path writable, opset, ``--int8`` needs ``--data`` for image models)
   and pick the parity and calibration samples: ``--data`` (never the same sample for both;
   ``DIR/val`` and ``DIR/train`` when it has them), else random inputs, said so;
2. run the PyTorch model once over the parity samples: the reference for every stage;
3. export and verify fp32 at batch 1 and 3 (and two sequence lengths for text); simplify and keep
   the simplified graph only if it passes the same check; then fp16 / int8 copies, each verified;
4. embed each file's contract (its own precision and parity figures) and move the files into
   place, then write ``<model>.export.json`` with the report.

All intermediate files live in a hidden scratch folder beside the output and are removed on any
exit. A parity failure still writes the files (marked failed in contract and report) so they can
be inspected; ``ExportReport.passed`` is then False and the CLI exits 1.

The stages themselves are in :mod:`edgecv.exporters.stages`; this module orders them and builds
the report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from edgecv.errors import InputError
from edgecv.exporters.onnx_export import (
    DEFAULT_OPSET,
    check_opset,
    file_size,
    scratch_dir,
    supports_attention,
)
from edgecv.exporters.samples import (
    SampleSet,
    SampleSplit,
    describe_source,
    random_samples,
    split_samples,
)
from edgecv.exporters.source import ExportSource
from edgecv.exporters.stages import (
    REDUCED,
    ExportRun,
    StageOutcome,
    export_fp32,
    reduced_stage,
    simplify_fp32,
    write_files,
)
from edgecv.exporters.verify import FP32_ATOL, FP32_RTOL, Reference, torch_reference
from edgecv.io import check_writable


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
    # int8 must beat fp32 on this machine (interleaved timing at these batch sizes, these threads;
    # None = every usable core); if it does not, see ``stages.int8_speed``
    int8_speed_check: bool = True
    int8_speed_threads: int | None = None
    int8_speed_batches: tuple[int, ...] = (1, 8)


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
    """What ``run_export`` wrote and how each stage compared with PyTorch (also ``<model>.export.json``)."""

    output: Path
    report_path: Path
    task: str
    architecture: str
    samples: str  # description of the parity inputs
    stages: list[StageReport]
    warnings: list[str]
    passed: bool
    # where the parity and the int8 calibration samples came from, and how many (never the same ones)
    data_split: dict[str, Any] = field(default_factory=dict)

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
                "warnings": self.warnings, "data_split": self.data_split,
                "stages": [s.to_dict() for s in self.stages]}


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
    check_destinations(opts)
    check_opset(opts.opset, exporter=opts.exporter)
    if opts.calib_size < 1:
        raise InputError(f"--calib-size {opts.calib_size}: expected >= 1")
    if opts.int8 and source.task == "image" and opts.data is None:
        raise InputError("--int8 for an image model needs calibration images: pass --data DIR "
                         "(a folder of representative images, a few hundred are enough)")
    if opts.data is not None and not Path(opts.data).exists():
        raise InputError(f"--data {opts.data}: not found (expected an image folder or a .csv/.tsv/.jsonl file)")


def check_destinations(opts: ExportOptions) -> None:
    """Every file the export will write can be written (a read-only or impossible location, a
    folder in the way of a sibling such as ``model.export.json``): checked before the model is
    exported, so nothing is half-written and no work is lost at the final rename."""
    paths = output_paths(Path(opts.output))
    wanted = ["fp32", "report"] + [name for name, asked in (("fp16", opts.fp16), ("int8", opts.int8)) if asked]
    for name in wanted:
        check_writable(paths[name], option="-o")


def run_export(source: ExportSource, opts: ExportOptions, *,
               progress: Callable[[str], None] | None = None) -> ExportReport:
    """Run the whole chain and write the files; see the module docstring for the order.

    ``progress(message)`` is called as each step starts (the CLI shows it on a terminal).
    """
    say = progress or _quiet
    check_options(source, opts)
    paths = output_paths(Path(opts.output))
    split = _samples(source, opts)
    samples, calib = split.parity, split.calibration
    attention = opts.attention and source.task == "text" and supports_attention(source.model)
    reference = _torch_reference(source, samples, attention=attention, say=say)
    with scratch_dir(paths["fp32"]) as scratch:
        run = ExportRun(source=source, reference=reference, paths=paths, scratch=scratch, say=say,
                        opset=opts.opset, exporter=opts.exporter, attention=attention, calib=calib,
                        fp32_atol=FP32_ATOL, fp32_rtol=FP32_RTOL, speed_check=opts.int8_speed_check,
                        speed_threads=opts.int8_speed_threads, speed_batches=tuple(opts.int8_speed_batches))
        outcomes = _run_stages(run, opts)
        write_files(run, outcomes)
    report = _build_report(source, split, paths, outcomes)
    from edgecv.io import write_json_atomic

    write_json_atomic(paths["report"], report.to_dict())
    return report


def _quiet(_message: str) -> None:
    return None


def _samples(source: ExportSource, opts: ExportOptions) -> SampleSplit:
    """Parity samples (``--verify-size`` from ``--data``, else 20 random inputs, which the report
    says) and, for static int8 of an image model, calibration images that are none of them."""
    calibrate = opts.int8 and source.task == "image"
    if opts.data is not None:
        return split_samples(opts.data, task=source.task, labels=source.labels, verify_size=opts.verify_size,
                             calib_size=opts.calib_size if calibrate else None, seed=opts.seed)
    vocab = source.tokenizer.vocab_size if source.tokenizer is not None else 100
    seq = min(12, source.max_len or 12)
    return SampleSplit(random_samples(task=source.task, n=20, input_shape=source.input_shape, vocab_size=vocab,
                                      seq_len=seq, seed=opts.seed))


def _torch_reference(source: ExportSource, samples: SampleSet, *, attention: bool,
                     say: Callable[[str], None]) -> Reference:
    """The PyTorch outputs every stage is compared with; a model whose class count does not
    match its labels fails here, before anything is written."""
    say(f"PyTorch reference on {describe_source(samples)}")
    reference = torch_reference(source.model, samples, spec=source.spec, tokenizer=source.tokenizer,
                                max_len=source.max_len, return_attention=attention)
    if reference.logits.shape[1] != len(source.labels):
        raise InputError(f"{source.source}: model outputs {reference.logits.shape[1]} classes but "
                         f"{len(source.labels)} labels are known")
    return reference


def _run_stages(run: ExportRun, opts: ExportOptions) -> list[StageOutcome]:
    """fp32, simplified, then the reduced precisions asked for, all converted from the graph that
    is deployed as the main model (the simplified one when it was kept)."""
    fp32 = export_fp32(run)
    if opts.simplify:
        simplified = simplify_fp32(run, fp32)
    else:
        simplified = StageOutcome("simplified", "skipped", note="--no-simplify")
    main = simplified if simplified.dest is not None else fp32
    if main is simplified:
        fp32 = replace(fp32, dest=None)  # the simplified graph is written in its place
    wanted = [stage for stage, asked in (("fp16", opts.fp16), ("int8", opts.int8)) if asked]
    return [fp32, simplified, *(reduced_stage(run, stage, main.graph) for stage in wanted)]


def _build_report(source: ExportSource, split: SampleSplit, paths: dict[str, Path],
                  outcomes: list[StageOutcome]) -> ExportReport:
    samples = split.parity
    fp32_size = file_size(paths["fp32"])
    stages = [_stage_row(outcome, fp32_size) for outcome in outcomes]
    warnings = list(source.warnings) + list(split.notes)
    if not samples.real:
        warnings.append("parity measured on random inputs (no --data given); pass --data for real samples")
    warnings += _stage_warnings(stages)
    written = {outcome.stage for outcome in outcomes if outcome.dest is not None}
    for name in REDUCED:
        if name not in written and paths[name].exists():
            warnings.append(f"{paths[name]} is left from an earlier export and was not rewritten; "
                            "delete it or export again with --" + name)
    # int8 below the agreement bar is only a warning ("warning" status); a failed fp32/fp16
    # check or any stage error fails the command.
    passed = all(row.status not in ("failed", "error") for row in stages)
    return ExportReport(output=paths["fp32"], report_path=paths["report"], task=source.task,
                        architecture=source.architecture, samples=describe_source(samples),
                        stages=stages, warnings=warnings, passed=passed, data_split=split.describe())


def _stage_row(outcome: StageOutcome, fp32_size: int) -> StageReport:
    """The report row of one stage; a written file reports its final size (contract included)."""
    written = outcome.dest is not None and outcome.dest.exists()
    size = file_size(outcome.dest) if written else outcome.size
    details = dict(outcome.details)
    if written and outcome.stage in REDUCED and fp32_size:
        details["size_ratio"] = round(size / fp32_size, 4)
    return StageReport(outcome.stage, str(outcome.dest) if outcome.dest is not None else None,
                       outcome.status, size=size, nodes=outcome.nodes, seconds=outcome.seconds,
                       parity=outcome.parity, note=outcome.note, details=details)


def _stage_warnings(stages: list[StageReport]) -> list[str]:
    """The report's warnings about the stages: the fp32 graph first, then each stage in order."""
    rows = {row.stage: row for row in stages}
    warnings = []
    if rows["simplified"].status == "not kept":
        warnings.append(f"simplifier not used, keeping the unsimplified graph: {rows['simplified'].note}")
    if rows["fp32"].status == "failed":
        warnings.append(f"fp32 export FAILED parity: {rows['fp32'].note}")
    for row in stages:
        if row.parity and row.parity.get("warning"):
            warnings.append(f"{row.stage}: {row.parity['warning']}")
        if row.status in ("failed", "error") and row.stage in REDUCED:
            warnings.append(f"{row.stage} FAILED: {row.note}")
        warnings += [f"{row.stage}: {w}" for w in row.details.get("warnings", [])]
        speed = row.details.get("speed") or {}
        if speed.get("warning") and row.status not in ("failed", "error"):
            warnings.append(speed["warning"])
    return warnings
