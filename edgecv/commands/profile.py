"""``edgecv profile``: honest on-device latency of one or more ONNX models (torch-free)."""
from __future__ import annotations

import sys
from typing import Any

import click

from edgecv.commands.options import CommaList, backend_options, engine_fields
from edgecv.runtimes.engines.base import normalize_provider

_POSITIVE = {"convert": int, "minimum": 1}


def _precision_list(command: Any) -> Any:
    """``--precision`` of :func:`backend_options` as a comma list: a sweep measures OpenVINO at
    each precision (``infer`` takes one). Swaps the option already attached to ``command``."""
    params = getattr(command, "__click_params__", [])
    for i, param in enumerate(params):
        if param.name == "precision":
            params[i] = click.Option(
                ["--precision"], default="auto", show_default=True,
                type=CommaList(str, choices=("auto", "f32", "bf16", "f16"), example="f32,bf16"),
                help="OpenVINO inference precision(s) to sweep, e.g. f32,bf16 (auto = the device's default; "
                     "ONNX Runtime runs what the file holds).")
    return command


@click.command("profile", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1, required=True, metavar="MODEL.onnx [MORE.onnx ...]")
@click.option("--provider", default="auto", show_default=True,
              type=CommaList(normalize_provider, example="cpu,openvino", what="providers"),
              help="Comma-separated providers to sweep: auto, cpu, cuda, tensorrt, openvino[:DEVICE].")
@click.option("--batch", default="1", show_default=True, type=CommaList(**_POSITIVE, example="1,8,32"), help="Comma-separated batch sizes, e.g. 1,8,32.")
@click.option("--threads", default=None, type=CommaList(**_POSITIVE, example="1,2,4"), help="Comma-separated intra-op thread counts [default: usable cores].")
@click.option("--seq-len", default=None, type=CommaList(**_POSITIVE, example="16,64,256"), help="Text models: comma-separated sequence lengths, e.g. 16,64,256 (lengths above the model's maximum are skipped with a notice).")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=D0,D1,...",
              help="Input shape for foreign models with dynamic dims, e.g. input=1,3,224,224 (dim 0 follows --batch).")
@click.option("--warmup", default=10, show_default=True, type=int, help="Untimed runs before measuring.")
@click.option("--runs", default=None, type=int, help="Timed runs per configuration [default: 100].")
@click.option("--duration", default=None, type=float, metavar="S", help="Time each configuration for S seconds instead of --runs.")
@click.option("--ops", is_flag=True, help="Per-operator-type time table and top nodes (ONNX Runtime profiling).")
@click.option("--top", default=10, show_default=True, type=int, help="Nodes listed by --ops.")
@click.option("--torch", "torch_ckpt", default=None, metavar="CKPT", help="Also time PyTorch eager from this checkpoint.")
@click.option("--opencv", is_flag=True, help="Also time cv2.dnn on the same ONNX file.")
@click.option("--pipeline", default=None, metavar="VIDEO", help="Profile the stream loop stage by stage on a video.")
@click.option("--peak", type=click.Choice(["onnxruntime", "numpy", "off"]), default="onnxruntime", show_default=True,
              help="How the matmul GFLOP/s ceiling for '% peak' is measured.")
@click.option("--json", "json_out", default=None, metavar="FILE|-", help="Write results as JSON ('-' = stdout).")
@click.option("--csv", "csv_out", default=None, metavar="FILE", help="Write results as CSV.")
@click.option("--markdown", "md_out", default=None, metavar="FILE", help="Write a Markdown report.")
@click.option("--plot", "plot_out", default=None, metavar="FILE.png", help="Latency distribution plot (needs matplotlib).")
@click.option("--wide", is_flag=True,
              help="Print every column (create and first-run ms, p90, mean, std, min, max, runs, GFLOP/s, % peak, "
                   "GPU copy times); the default table fits in 120 columns. JSON/CSV/Markdown always hold every field.")
@click.option("--assert-p99-ms", default=None, type=float, metavar="X", help="Exit 1 if any configuration's p99 exceeds X ms.")
@click.option("--spinning/--no-spinning", default=True, show_default=True,
              help="Let ONNX Runtime's intra-op threads spin between runs (its default; lowest latency). "
                   "'edgecv infer' turns spinning off so capture threads keep a core.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Compare every row but the fp32 ONNX Runtime CPU ones with that run on the same inputs: "
                   "max |diff| and top-1 agreement (what bf16 or int8 costs).")
@click.option("--data", default=None, metavar="DIR", type=click.Path(exists=True),
              help="Images for --verify, prepared with the model's own preprocessing [default: synthetic inputs].")
@click.option("--verbose", is_flag=True, help="Show ONNX Runtime's own log output.")
@_precision_list
@backend_options()
def profile(models: tuple[str, ...], provider: list[str], batch: list[int], threads: list[int] | None,
            seq_len: list[int] | None,
            shapes: tuple[str, ...], warmup: int, runs: int | None, duration: float | None, ops: bool, top: int,
            torch_ckpt: str | None, opencv: bool, pipeline: str | None, peak: str, json_out: str | None,
            csv_out: str | None, md_out: str | None, plot_out: str | None, wide: bool, assert_p99_ms: float | None,
            spinning: bool, verify: bool, data: str | None, verbose: bool, **backend: Any) -> None:
    """Measure latency of MODEL.onnx on this device: cold start, p50/p90/p99, throughput.

    Several files (e.g. fp32 / int8 exports) are compared side by side with ratios to the first;
    --torch and --opencv add baselines measured in the same run with the same threads.
    A configuration that cannot run (a --seq-len above the model's maximum, a provider whose
    session fails) is reported as "skipped: ..." and the others are still measured; the exit
    code is 1 only when nothing could be measured.

    \b
    Examples:
      edgecv profile model.onnx
      edgecv profile fp32.onnx int8.onnx --batch 1,8 --threads 1,2 --markdown report.md
      edgecv profile fp32.onnx int8.onnx --wide --plot latency.png
      edgecv profile model.onnx --ops --top 15
      edgecv profile model.onnx --torch runs/exp1/best.pt --opencv --json -
      edgecv profile text.onnx --seq-len 16,64,256 --assert-p99-ms 20
      edgecv profile foreign.onnx --shape input=1,3,224,224
      edgecv profile model.onnx model.int8.onnx --provider cpu,openvino --precision f32,bf16 --batch 1,8
    """
    from edgecv.hardware import usable_cores
    from edgecv.runtimes.engines.base import EngineOptions
    from edgecv.runtimes.profiling.job import ProfileOptions, check_p99, run_profile
    from edgecv.runtimes.profiling.sweep import parse_shapes

    if runs is not None and duration is not None:
        raise click.UsageError("--runs and --duration: give one of them, not both")
    if top < 1:
        raise click.BadParameter(f"{top}: expected a positive integer", param_hint="--top")
    _check_outputs(json_out=json_out, csv_out=csv_out, md_out=md_out, plot_out=plot_out)
    precisions = backend.pop("precision") or ["auto"]
    opts = ProfileOptions(
        models=list(models), providers=provider, batches=batch, threads=threads or [usable_cores()],
        seq_lens=seq_len or [None], shapes=parse_shapes(shapes),
        warmup=warmup, runs=runs, duration_s=duration, ops=ops, top=top, baselines=_eager_baselines(torch_ckpt, models[0]),
        opencv=opencv, pipeline=pipeline, peak=peak, spinning=spinning, verbose=verbose,
        engine=EngineOptions(**engine_fields(backend)), precisions=list(dict.fromkeys(precisions)),
        parity=verify, data=data)
    to_stdout = json_out == "-"
    say = _progress(quiet=to_stdout)
    result = run_profile(opts, progress=say)
    _emit(result, opts, json_out=json_out, csv_out=csv_out, md_out=md_out, plot_out=plot_out, wide=wide)
    if assert_p99_ms is not None:
        over = check_p99(result.rows, assert_p99_ms)
        if over:
            for line in over:
                click.echo(f"FAIL: {line}", err=True)
            raise SystemExit(1)


def _check_outputs(*, json_out: str | None, csv_out: str | None, md_out: str | None,
                   plot_out: str | None) -> None:
    """Fail before measuring, not after: a sweep can take minutes, and its results must not be
    lost to an output path that cannot be written (``--json -`` is stdout and always works)."""
    from edgecv.errors import require
    from edgecv.io import check_writable

    for option, path in (("--json", json_out), ("--csv", csv_out), ("--markdown", md_out), ("--plot", plot_out)):
        if path and not (option == "--json" and path == "-"):
            check_writable(path, option=option)
    if plot_out:
        require("matplotlib", "plot")


def _eager_baselines(checkpoint: str | None, first_model: str) -> list[Any]:
    """The PyTorch eager baseline for ``--torch``, built here and handed to the profiler (which
    never imports torch). Loaded before anything is measured, so a bad checkpoint fails at once."""
    if not checkpoint:
        return []
    try:
        import torch  # noqa: F401
    except ImportError:
        from edgecv.errors import MissingDependencyError

        raise MissingDependencyError("torch is not installed; --torch needs it: pip install 'edgecv[train]'") from None
    from edgecv.contract import read_contract
    from edgecv.models.eager import TorchEagerBaseline

    return [TorchEagerBaseline(checkpoint, contract=read_contract(first_model))]


def _progress(*, quiet: bool) -> Any:
    """One status line per configuration on stderr, only when the output is a terminal."""
    if quiet or not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None

    def say(message: str) -> None:
        click.echo(f"  measuring {message} ...", err=True)

    return say


def _emit(result: Any, opts: Any, *, json_out: str | None, csv_out: str | None, md_out: str | None,
          plot_out: str | None, wide: bool = False) -> None:
    """Files first (they keep every field), then the terminal: prose wrapped and the compact
    table, so nothing wraps in a 120-column terminal (``--wide``: the full table)."""
    from edgecv.runtimes.profiling import report, sysinfo

    header = sysinfo.header_lines(result.env)
    budget = f"{opts.duration_s:g} s" if opts.duration_s else f"{opts.runs or 100} runs"
    header.append(f"warm-up {opts.warmup} runs, then {budget} per configuration; times in ms; ONNX Runtime "
                  f"thread spinning {'on' if opts.spinning else 'off'}")
    header.append("'vs first' = p50 of the first row of its batch/threads group / p50 of the row")
    header += _openvino_lines(result)
    public = [{k: v for k, v in row.items() if k != "samples_ms"} for row in result.rows]
    flat = [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in public]
    ops_sections = [(f"operators: {label}", _ops_text(prof, opts.top, markdown=True)) for label, prof in result.ops]
    if result.pipeline:
        ops_sections.append(("pipeline", "```\n" + _pipeline_text(result.pipeline) + "\n```"))
    if json_out:
        rows = public
        text = report.write_json(json_out, rows, result.env)
        if text is not None:
            click.echo(text)
    if csv_out:
        report.write_csv(csv_out, flat)
    if md_out:
        report.write_markdown(md_out, flat, header + result.notices, sections=ops_sections)
    if plot_out:
        report.plot_latency(plot_out, result.rows)
    if json_out == "-":
        for notice in result.notices:
            click.echo(notice, err=True)
        return
    for line in report.wrap_lines(header) + list(result.notices):  # a notice stays one greppable line
        click.echo(line)
    click.echo("")
    click.echo(report.format_results(public) if wide else report.format_compact(public))
    comps = report.comparison_lines(public)
    if comps:
        click.echo("")
        for line in report.wrap_lines(comps):
            click.echo(line)
    for label, prof in result.ops:
        click.echo(f"\nwhere the time goes: {label}")
        click.echo(_ops_text(prof, opts.top))
    if result.pipeline:
        click.echo("\nstream pipeline:")
        click.echo(_pipeline_text(result.pipeline))
    for what, path in (("JSON", json_out), ("CSV", csv_out), ("Markdown", md_out), ("plot", plot_out)):
        if path and path != "-":
            click.echo(f"wrote {what}: {path}")


def _openvino_lines(result: Any) -> list[str]:
    """The OpenVINO version, and that --threads reached it (INFERENCE_NUM_THREADS, read back from
    the compiled model), whenever an OpenVINO row is in the table."""
    version = result.env.get("versions", {}).get("openvino")
    if not version:
        return []
    used = sorted({(r.get("threads"), r.get("threads_used")) for r in result.rows if r.get("runtime") == "openvino"},
                  key=str)
    compiled = ", ".join(f"--threads {t} -> {u}" for t, u in used if u is not None) or "not read back"
    return [f"openvino {version}; threads: ONNX Runtime intra_op_num_threads and OpenVINO INFERENCE_NUM_THREADS "
            f"both follow --threads (OpenVINO compiled: {compiled}); 'precision' = what each engine really ran"]


def _ops_text(prof: Any, top: int, *, markdown: bool = False) -> str:
    from edgecv.table import format_table, markdown_table

    ops = [{"op": o.op_type, "ms_per_run": o.per_run_ms, "pct": o.percent, "nodes": o.count}
           for o in prof.ops]
    nodes = [{"node": n.node, "op": n.op_type, "ms_per_run": n.per_run_ms, "pct": n.percent}
             for n in prof.nodes[:top]]
    fmt = {"ms_per_run": lambda v: f"{v:.3f}", "pct": lambda v: f"{v:.1f}%"}
    cols_o = [("op", "op type"), ("ms_per_run", "ms/run"), ("pct", "% of run"), ("nodes", "count")]
    cols_n = [("node", "node"), ("op", "op type"), ("ms_per_run", "ms/run"), ("pct", "% of run")]
    head = (f"{prof.runs} profiled runs, {prof.run_ms:.3f} ms per run in the trace; kernels on "
            + ", ".join(f"{p} {v:.0f}%" for p, v in prof.providers.items()))
    if markdown:
        return (f"{head}\n\n{markdown_table(ops, cols_o, formatters=fmt)}\n\nTop {top} nodes:\n\n"
                f"{markdown_table(nodes, cols_n, formatters=fmt)}")
    return (f"{head}\n{format_table(ops, cols_o, formatters=fmt)}\n\ntop {top} nodes:\n"
            f"{format_table(nodes, cols_n, formatters=fmt)}")


def _pipeline_text(data: dict[str, Any]) -> str:
    from edgecv.table import format_table

    ms = {k: (lambda v: "-" if v is None else f"{v:.3f}") for k in ("p50_ms", "p95_ms", "mean_ms", "max_ms")}
    lines = [format_table(data.get("stages", []),
                          [("stage", "stage"), ("n", "frames"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
                           ("mean_ms", "mean ms"), ("max_ms", "max ms"), ("share", "% of stage time")],
                          formatters={"share": lambda v: "-" if v is None else f"{v:.1f}%", **ms})]
    lines.append(f"end-to-end: {data.get('fps', 0):.1f} FPS over {data.get('frames', 0)} frames "
                 f"({data.get('wall_s', 0):.2f} s; decode and preprocess overlap inference)"
                 + (f", {data['dropped']} dropped" if data.get("dropped") else ""))
    return "\n".join(lines)

