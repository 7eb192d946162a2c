"""One ``edgecv profile`` run: sweep, baselines, roofline, parity, per-operator breakdown, pipeline.

The CLI turns options into a :class:`ProfileOptions` and calls :func:`run_profile`; everything
that measures lives here and in the modules it calls, so the same run is scriptable from Python.

Side by side: every model x provider x precision lands in one table, ordered model-major within
each (batch, threads, seq-len) group, whose first row is the reference of the "vs first" ratios.
Parity: a row that is not its model's ONNX Runtime CPU fp32 run is compared with that run on the
same inputs (``--data`` images, else synthetic ones): max |diff| and top-1 agreement, so the cost
of OpenVINO's bf16 or of an int8 file is measured, not guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.errors import EdgecvError, InputError
from edgecv.runtimes.engines.base import PRECISION_FAMILIES, provider_family
from edgecv.runtimes.profiling import roofline, sweep

# provider families whose engine chooses its own arithmetic (EngineOptions.precision): only these
# are measured once per --precision value; ONNX Runtime runs what the file holds
PARITY_SAMPLES = 16  # synthetic inputs per parity check (rounded up to whole batches)
PARITY_IMAGES = 32  # --data images per parity check


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
    # precisions to sweep on engines that choose their own (OpenVINO); None = the engine option's
    precisions: list[str] | None = None
    parity: bool = True  # compare rows with their model's ONNX Runtime CPU fp32 run
    data: str | None = None  # image folder/files for the parity inputs (else synthetic inputs)
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

        from edgecv.runtimes.engines.base import EngineOptions

        return replace(self.engine or EngineOptions(), spinning=self.spinning, verbose=self.verbose,
                       batch_sizes=tuple(self.batches), seq_lens=tuple(s for s in self.seq_lens if s))


@dataclass
class ProfileReport:
    rows: list[dict[str, Any]]  # one per measured configuration, ratios included
    env: dict[str, Any]
    notices: list[str]
    ops: list[tuple[str, Any]] = field(default_factory=list)  # (label, OpsProfile)
    pipeline: dict[str, Any] | None = None


_RUNTIME_ORDER = {"onnxruntime": 0, "openvino": 0, "torch": 1, "opencv": 2}


def run_profile(opts: ProfileOptions, *, progress: Callable[[str], None] | None = None) -> ProfileReport:
    """Measure every configuration, then add baselines, roofline, parity and ratios.

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
    measured, failed = _sweep_precisions(opts, configs, notices, say)
    skipped += failed
    if not measured:
        raise sweep.nothing_measured(skipped)
    notices[:0] = list(dict.fromkeys(s.notice for s in skipped))
    pairs = [(cfg, res) for cfg, res, _rank in measured]
    if opts.parity:
        _add_parity(opts, measured, infos, notices, say)
    ops = _ops(opts, pairs, notices, say) if opts.ops else []
    results = [res for _cfg, res in pairs] + _baselines(opts, [cfg for cfg, _res in pairs], notices, say)
    order = {info.name: i for i, info in enumerate(infos)}
    rank = {id(res): r for _cfg, res, r in measured}
    results.sort(key=lambda r: (r.batch, r.threads or 0, r.seq_len or 0, _RUNTIME_ORDER.get(r.runtime, 9) > 0,
                                order.get(r.model, len(order)), rank.get(id(r), (0, 0)),
                                _RUNTIME_ORDER.get(r.runtime, 9)))
    # each (batch, threads, seq) group opens with the first model on the first provider and
    # precision, so "vs first" reads "x times the speed of the first row"
    _add_roofline(opts, results, infos, notices, say)
    rows = report.add_ratios([r.to_dict(samples=True) for r in results])
    env = sysinfo.collect(p for r in results for p in r.providers)
    if any(r.runtime == "openvino" for r in results):
        from edgecv.runtimes.engines.openvino_engine import import_openvino

        env["versions"]["openvino"] = import_openvino().get_version().split("-")[0]
    out = ProfileReport(rows, env, notices, ops)
    if opts.pipeline:
        out.pipeline = run_pipeline(opts, infos[0], say)
        rows[0]["pipeline"] = out.pipeline  # --json: the stream loop belongs to the first model
    return out


def _sweep_precisions(opts: ProfileOptions, configs: Sequence[sweep.Config], notices: list[str],
                      say: Callable[[str], None]
                      ) -> tuple[list[tuple[sweep.Config, sweep.ProfileResult, tuple[int, int]]], list[sweep.Skipped]]:
    """The sweep once per precision: the first pass runs every configuration, later ones only the
    providers whose engine chooses its arithmetic. Each result is tagged with the precision asked
    for and ranked (provider as given, precision as given) for the side-by-side table."""
    template = opts.engine_template()
    precisions = list(opts.precisions or [template.precision])
    measured: list[tuple[sweep.Config, sweep.ProfileResult, tuple[int, int]]] = []
    skipped: list[sweep.Skipped] = []
    for index, precision in enumerate(precisions):
        todo = [c for c in configs if index == 0 or provider_family(c.provider) in PRECISION_FAMILIES]
        if not todo:
            continue
        tag = f" precision {precision}" if len(precisions) > 1 else ""
        done, failed = sweep.run_sweep(todo, warmup=opts.warmup, runs=opts.runs, duration_s=opts.duration_s,
                                       shapes=opts.shapes, verbose=opts.verbose, notices=notices,
                                       spinning=opts.spinning, progress=lambda cfg, tag=tag: say(cfg.label + tag),
                                       engine_options=replace(template, precision=precision))
        for cfg, res in done:
            if provider_family(cfg.provider) in PRECISION_FAMILIES:
                res.extra["precision_hint"] = precision
            measured.append((cfg, res, (opts.providers.index(cfg.provider), index)))
        skipped += failed
    return measured, skipped


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
    from edgecv.errors import short_message
    from edgecv.runtimes.profiling import baselines

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
        info = by_name.get(r.model) or infos[0]  # a handed-in baseline (a checkpoint) ran the first model's inputs
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
        if result.runtime != "onnxruntime":
            notices.append(f"no operator profile: {cfg.label}: --ops reads ONNX Runtime's own trace")
            continue
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


def compare_outputs(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> dict[str, Any]:
    """max |diff| and top-1 agreement of two runs' first outputs over the same input batches
    (top-1 only for classifier-shaped scores, (N, C) after squeezing 1-sized dims)."""
    a = np.concatenate([np.asarray(g, dtype=np.float64) for g in got])
    b = np.concatenate([np.asarray(w, dtype=np.float64) for w in want])
    if a.shape != b.shape:
        raise InputError(f"outputs differ in shape: {list(a.shape)} vs {list(b.shape)}")
    out: dict[str, Any] = {"max_abs": float(np.abs(a - b).max()) if a.size else 0.0, "n": int(a.shape[0]),
                           "top1_agreement": None}
    sa, sb = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if a.ndim >= 2 and sa.shape[1] > 1 and sum(d > 1 for d in a.shape[1:]) == 1:
        out["top1_agreement"] = float((sa.argmax(axis=1) == sb.argmax(axis=1)).mean())
    return out


def _references(infos: Sequence[sweep.ModelInfo]) -> dict[str, sweep.ModelInfo]:
    """Each model's fp32 reference: itself when it is not quantized, else the first unquantized
    model given with the same inputs (the fp32 export an int8 file came from), else itself."""
    plain = [i for i in infos if not i.quantized]
    out = {}
    for info in infos:
        same = [p for p in plain if [(x.name, x.shape, x.dtype) for x in p.inputs]
                == [(x.name, x.shape, x.dtype) for x in info.inputs]]
        out[info.name] = info if not info.quantized or not same else same[0]
    return out


def _add_parity(opts: ProfileOptions, measured: Sequence[tuple[sweep.Config, sweep.ProfileResult, Any]],
                infos: Sequence[sweep.ModelInfo], notices: list[str], say: Callable[[str], None]) -> None:
    """Compare every row but the references themselves with the reference on ONNX Runtime CPU
    (same inputs, first output); a check that cannot run is a notice, the latency row stands."""
    from edgecv.runtimes.engines.base import EngineOptions, open_engine

    refs = _references(infos)
    template = opts.engine_template()
    cache: dict[Any, Any] = {}
    for cfg, result, _rank in measured:
        ref = refs[cfg.model.name]
        if ref is cfg.model and result.runtime == "onnxruntime" and result.provider == "cpu":
            continue
        say(f"parity: {cfg.label}")
        try:
            batches, source = _parity_inputs(opts, cfg, cache)
            if ref.name not in cache:
                cache[ref.name] = open_engine(ref.path, EngineOptions(provider="cpu"))
            want = [cache[ref.name].run(None, feeds)[0] for feeds in batches]
            engine = open_engine(cfg.model.path, replace(template, provider=cfg.provider, threads=cfg.threads,
                                                         precision=result.extra.get("precision_hint", "auto")))
            check = compare_outputs([engine.run(None, feeds)[0] for feeds in batches], want)
        except Exception as exc:  # noqa: BLE001 - a backend's own error types too: the latency row stands
            notices.append(f"no parity: {cfg.label}: {sweep.Skipped(cfg, exc).reason}")  # type: ignore[arg-type]
            continue
        result.extra.update(parity_max_abs=check["max_abs"], parity_top1=check["top1_agreement"],
                            parity_n=check["n"], parity_inputs=source, threads_used=engine.threads,
                            parity_ref=f"{ref.name} ({cache[ref.name].backend} cpu, {cache[ref.name].precision})")


def _parity_inputs(opts: ProfileOptions, cfg: sweep.Config, cache: dict[tuple[Any, ...], Any]
                   ) -> tuple[list[dict[str, np.ndarray]], str]:
    """Input batches for one configuration: ``--data`` images through the model's own
    preprocessing when it is a one-input image model, else synthetic inputs (several seeds)."""
    info = cfg.model
    if opts.data and len(info.inputs) == 1 and len(info.inputs[0].shape) == 4:
        key = ("images", info.name)
        if key not in cache:
            cache[key] = _images(opts.data, info)
        images = cache[key]
        reps = -(-cfg.batch // len(images))  # fewer images than one batch: repeat them
        images = np.concatenate([images] * reps)[: max(cfg.batch, len(images) // cfg.batch * cfg.batch)]
        batches = [{info.inputs[0].name: images[i:i + cfg.batch]} for i in range(0, len(images), cfg.batch)]
        return batches, f"{len(images)} images from {opts.data}"
    count = -(-PARITY_SAMPLES // cfg.batch)
    batches = [sweep.synthesize_inputs(info, batch=cfg.batch, seq_len=cfg.seq_len, shapes=opts.shapes, seed=100 + i)
               for i in range(count)]
    return batches, f"{count * cfg.batch} synthetic inputs"


def _images(data: str, info: sweep.ModelInfo) -> np.ndarray:
    """Up to PARITY_IMAGES images under ``data``, preprocessed as ``edgecv infer`` would."""
    from edgecv.preprocess import load_image, preprocess_image
    from edgecv.runtimes.foreign import build_spec
    from edgecv.runtimes.streaming.sources import collect_images

    inp = info.inputs[0]
    base = info.contract.preprocess if info.contract is not None else None
    spec = build_spec(input_shape=list(inp.shape), input_dtype=np.dtype(inp.dtype).name, base=base, overrides=None)
    arrays = []
    for path in collect_images([data])[:PARITY_IMAGES * 2]:
        try:
            arrays.append(preprocess_image(load_image(path), spec))
        except InputError:  # an unreadable file is not a reason to drop the comparison
            continue
        if len(arrays) == PARITY_IMAGES:
            break
    if not arrays:
        raise InputError(f"--data {data}: no readable images")
    return np.stack(arrays)


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
