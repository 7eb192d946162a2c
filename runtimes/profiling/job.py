"""One ``edgecv profile`` run: sweep, baselines, roofline, per-operator breakdown, pipeline.

The CLI turns options into a :class:`ProfileOptions` and calls :func:`run_profile`; everything
that measures lives here and in the modules it calls, so the same run is scriptable from Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from edgecv.runtimes.profiling import roofline, sweep

from edgecv.errors import EdgecvError


@dataclass
class ProfileOptions:
    models: list[str]
    providers: list[str] = field(default_factory=lambda: ["auto"])
    batches: list[int] = field(default_factory=lambda: [1])
    threads: list[int | None] = field(default_factory=lambda: [None])
    seq_lens: list[int | None] = field(default_factory=lambda: [None])
    shapes: dict[str, list[int]] = field(default_factory=dict)
    warmup: int = 10
    runs: int | None = None
    duration_s: float | None = None
    ops: bool = False
    top: int = 10
    # runtimes handed in by the caller (``edgecv profile --torch`` builds a PyTorch eager one)
    baselines: list[Any] = field(default_factory=list)
    opencv: bool = False
    pipeline: str | None = None
    peak: str = "onnxruntime"  # "onnxruntime" | "numpy" | "off"
    # ONNX Runtime's default: intra-op threads spin between runs, which is what a latency-bound
    # deployment gets. ``edgecv infer``'s stream loop turns it off (it starves capture threads).
    spinning: bool = True
    verbose: bool = False
    # backend options (GPU index, TensorRT caches and fp16, OpenVINO precision, provider options);
    # provider and threads are swept, spinning and verbose come from the fields above
    engine: Any = None  # EngineOptions

    def engine_template(self) -> Any:
        """The ``EngineOptions`` every configuration starts from (with the sweep's batch sizes and
        sequence lengths, which TensorRT's optimisation profiles must cover)."""
        from dataclasses import replace

        from edgecv.runtimes.engine import EngineOptions

        return replace(self.engine or EngineOptions(), spinning=self.spinning, verbose=self.verbose,
                       batch_sizes=tuple(self.batches), seq_lens=tuple(s for s in self.seq_lens if s))


@dataclass
class ProfileReport:
    rows: list[dict[str, Any]]  # one per measured configuration, ratios included
    env: dict[str, Any]
    notices: list[str]
    ops: list[tuple[str, Any]] = field(default_factory=list)  # (label, OpsProfile)
    pipeline: dict[str, Any] | None = None


_RUNTIME_ORDER = {"onnxruntime": 0, "torch": 1, "opencv": 2}


def run_profile(opts: ProfileOptions, *, progress: Callable[[str], None] | None = None) -> ProfileReport:
    """Measure every configuration, then add baselines, roofline and ratios.

    A configuration that cannot be built or run becomes a "skipped: ..." notice and the others
    are still measured; only a sweep in which nothing ran is an error (one line, before anything
    is timed when no configuration can even be built)."""
    from edgecv.runtimes.profiling import report, sysinfo
    from edgecv.runtimes.profiling.timing import check_budget

    check_budget(runs=opts.runs, duration_s=opts.duration_s, warmup=opts.warmup)
    say = progress or (lambda _msg: None)
    infos = [sweep.inspect_model(p) for p in opts.models]
    configs, skipped = sweep.plan(sweep.expand(infos, providers=opts.providers, batches=opts.batches,
                                               threads=opts.threads, seq_lens=opts.seq_lens), shapes=opts.shapes)
    if not configs:
        raise sweep.nothing_measured(skipped)
    notices: list[str] = []
    measured, failed = sweep.run_sweep(configs, warmup=opts.warmup, runs=opts.runs, duration_s=opts.duration_s,
                                       shapes=opts.shapes, verbose=opts.verbose, notices=notices,
                                       spinning=opts.spinning, progress=lambda cfg: say(cfg.label),
                                       engine_options=opts.engine_template())
    skipped += failed
    if not measured:
        raise sweep.nothing_measured(skipped)
    notices[:0] = [s.notice for s in skipped]
    results = [res for _cfg, res in measured]
    ops = _ops(opts, measured, notices, say) if opts.ops else []
    results += _baselines(opts, [cfg for cfg, _res in measured], notices, say)
    order = {info.name: i for i, info in enumerate(infos)}
    lead = results[0].provider
    results.sort(key=lambda r: (r.provider != lead, r.batch, r.threads or 0, r.seq_len or 0,
                                _RUNTIME_ORDER.get(r.runtime, 9) > 0, order.get(r.model, len(order)),
                                _RUNTIME_ORDER.get(r.runtime, 9)))
    # sort puts each group's first-model ONNX Runtime row first, so ratios read "vs first model"
    _add_roofline(opts, results, infos, notices, say)
    rows = report.add_ratios([r.to_dict(samples=True) for r in results])
    env = sysinfo.collect(p for r in results for p in r.providers)
    out = ProfileReport(rows, env, notices, ops)
    if opts.pipeline:
        out.pipeline = run_pipeline(opts, infos[0], say)
        rows[0]["pipeline"] = out.pipeline  # --json: the stream loop belongs to the first model
    return out


def _baselines(opts: ProfileOptions, configs: Sequence[sweep.Config], notices: list[str],
               say: Callable[[str], None]) -> list[sweep.ProfileResult]:
    """Handed-in and OpenCV baselines on the configurations ONNX Runtime could run."""
    out: list[sweep.ProfileResult] = []
    first = configs[0].model if configs else None
    for baseline in opts.baselines:  # handed in (e.g. PyTorch eager); timed on the first model's inputs
        seen = set()
        for cfg in configs:
            key = (cfg.batch, cfg.threads, cfg.seq_len)
            if cfg.model is not first or key in seen:
                continue
            seen.add(key)
            say(f"{baseline.runtime} batch {cfg.batch} threads {cfg.threads}")
            result = _handed_in(baseline, cfg, opts, notices)
            if result is not None:
                out.append(result)
    if opts.opencv:
        out += _opencv(opts, configs, notices, say)
    return out


def _handed_in(baseline: Any, cfg: sweep.Config, opts: ProfileOptions,
               notices: list[str]) -> sweep.ProfileResult | None:
    """One handed-in baseline row; a failure is a notice (its runtime is not ours to judge)."""
    from edgecv.runtimes.profiling import baselines

    from edgecv.errors import short_message

    feeds = sweep.synthesize_inputs(cfg.model, batch=cfg.batch, seq_len=cfg.seq_len, shapes=opts.shapes)
    try:
        return baselines.profile_baseline(baseline, cfg, feeds, warmup=opts.warmup, runs=opts.runs,
                                          duration_s=opts.duration_s)
    except Exception as exc:  # noqa: BLE001 - e.g. torch's RuntimeError from a mismatched checkpoint
        where = f"batch {cfg.batch} threads {cfg.threads}" + (f" seq-len {cfg.seq_len}" if cfg.seq_len else "")
        notices.append(f"skipped: {baseline.runtime} {where}: {short_message(exc)}")
        return None


def _opencv(opts: ProfileOptions, configs: Sequence[sweep.Config], notices: list[str],
            say: Callable[[str], None]) -> list[sweep.ProfileResult]:
    from edgecv.runtimes.profiling import baselines

    out: list[sweep.ProfileResult] = []
    seen = set()
    failed: set[str] = set()
    for cfg in configs:
        key = (cfg.model.name, cfg.batch, cfg.threads, cfg.seq_len)
        if key in seen or cfg.model.name in failed:
            continue
        seen.add(key)
        say(f"{cfg.model.name} cv2.dnn batch {cfg.batch} threads {cfg.threads}")
        feeds = sweep.synthesize_inputs(cfg.model, batch=cfg.batch, seq_len=cfg.seq_len, shapes=opts.shapes)
        try:
            out.append(baselines.profile_opencv(cfg, feeds, warmup=opts.warmup, runs=opts.runs,
                                                duration_s=opts.duration_s))
        except EdgecvError as exc:  # one model cv2.dnn cannot load must not lose the others
            notices.append(f"notice: {exc}")
            failed.add(cfg.model.name)
    return out


def _add_roofline(opts: ProfileOptions, results: list[sweep.ProfileResult], infos: Sequence[sweep.ModelInfo],
                  notices: list[str], say: Callable[[str], None]) -> None:
    by_name = {i.name: i for i in infos}
    macs_cache: dict[tuple[Any, ...], int | None] = {}
    peaks: dict[int | None, float | None] = {}
    for r in results:
        info = by_name.get(r.model) if r.runtime in ("onnxruntime", "opencv") else infos[0]
        if info is None:
            continue
        key = (info.name, r.batch, r.seq_len)
        if key not in macs_cache:
            feeds = sweep.synthesize_inputs(info, batch=r.batch, seq_len=r.seq_len, shapes=opts.shapes)
            image = next((v.shape[-1] for v in feeds.values() if v.ndim == 4), None)
            macs_cache[key] = roofline.model_macs(info.path, batch=r.batch, seq_len=r.seq_len, image_size=image)
        peak = None
        if opts.peak != "off" and r.provider == "cpu" and not info.quantized:
            if r.threads not in peaks:
                say(f"matmul peak, threads {r.threads}")
                peaks[r.threads] = _peak(opts, r.threads, notices)
            peak = peaks[r.threads]
        r.extra.update(roofline.achieved(macs_cache[key], r.stats.p50_ms, peak))
    if any(i.quantized for i in infos) and opts.peak != "off":
        notices.append("% peak is left out for quantized models: int8 arithmetic against a float32 "
                       "matmul ceiling is not a like-for-like ratio")
    if opts.peak != "off" and any(peaks.values()):
        notices.append("peak = measured float32 matmul GFLOP/s (" + opts.peak + ") at "
                       + ", ".join(f"{t or 'default'} threads: {p:.1f}" for t, p in peaks.items() if p))


def _peak(opts: ProfileOptions, threads: int | None, notices: list[str]) -> float | None:
    """The matmul ceiling, or None with a notice: the latencies stand without their % peak."""
    try:
        return roofline.matmul_peak_gflops(threads=threads, method=opts.peak)
    except EdgecvError as exc:
        notices.append(f"no % peak at {threads or 'default'} threads: {exc}")
        return None


def _ops(opts: ProfileOptions, measured: Sequence[tuple[sweep.Config, sweep.ProfileResult]],
         notices: list[str], say: Callable[[str], None]) -> list[tuple[str, Any]]:
    """Per-operator traces of the measured configurations; each is also put on its row."""
    from edgecv.runtimes.profiling.ops import profile_ops

    out = []
    runs = min(opts.runs or 50, 200)
    for cfg, result in measured:
        say(f"per-operator profile: {cfg.label}")
        feeds = sweep.synthesize_inputs(cfg.model, batch=cfg.batch, seq_len=cfg.seq_len, shapes=opts.shapes)
        try:
            prof = profile_ops(cfg.model.path, feeds, provider=cfg.provider, threads=cfg.threads,
                               warmup=min(opts.warmup, 10), runs=runs, verbose=opts.verbose,
                               spinning=opts.spinning)
        except EdgecvError as exc:  # the latency row stands without its breakdown
            notices.append(f"no operator profile: {cfg.label}: {sweep.Skipped(cfg, exc).reason}")
            continue
        result.extra["ops"] = prof.to_dict(top=opts.top)
        label = f"{cfg.model.name} {cfg.provider} batch {cfg.batch} threads {cfg.threads}" + (
            f" seq {cfg.seq_len}" if cfg.seq_len else "")
        out.append((label, prof))
    return out


def run_pipeline(opts: ProfileOptions, info: sweep.ModelInfo, say: Callable[[str], None]) -> dict[str, Any]:
    """Stage-by-stage timing of the stream loop over a video (decode, preprocess, infer, post)."""
    from edgecv.runtimes.profiling import pipeline as pipeline_profile

    say(f"pipeline: {opts.pipeline}")
    return pipeline_profile.profile_pipeline(info.path, opts.pipeline or "", provider=opts.providers[0],
                                             threads=opts.threads[0], verbose=opts.verbose)


def check_p99(rows: Sequence[dict[str, Any]], limit_ms: float) -> list[str]:
    """Configurations whose p99 exceeds ``limit_ms`` (for ``--assert-p99-ms`` in CI)."""
    return [f"{r['model']} ({r['runtime']}, {r['provider']}, batch {r['batch']}, threads {r['threads']}"
            + (f", seq {r['seq_len']}" if r.get("seq_len") else "") + f"): p99 {r['p99_ms']:.3f} ms > {limit_ms:g} ms"
            for r in rows if r["p99_ms"] > limit_ms]
