"""``edgecv infer``: classify images, folders, video, cameras, streams or text (torch-free)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from edgecv.commands.options import (
    BACKEND_KEYS,
    PREPROCESS_KEYS,
    ProviderType,
    backend_options,
    engine_fields,
    preprocess_options,
    preprocess_overrides,
    take,
)

EXAMPLES = """
\b
Examples:
  edgecv infer model.onnx cat.jpg                       # one image, top-5
  edgecv infer model.onnx photos/ --batch-size 8 --csv out.csv
  edgecv infer model.onnx clip.mp4 --save out.mp4 --json out.jsonl --smooth 0.3
  edgecv infer model.onnx --camera 0 --show
  edgecv infer model.onnx rtsp://10.0.0.5/stream --json frames.jsonl
  edgecv infer model.onnx --camera 0 --camera 1 rtsp://a/1 --save out.mp4   # out_cam0.mp4, ...
  edgecv infer model.onnx --streams cams.txt --mosaic wall.mp4 --json frames.jsonl --fps-limit 10
  edgecv infer sentiment.onnx --text "the movie was great" --show-attention
  edgecv infer mobilenetv2.onnx dog.jpg --labels imagenet --resize 256 --crop 224
  edgecv infer model.onnx photos/ --provider openvino --verify   # what OpenVINO's bf16 costs
"""


@dataclass
class InferOptions:
    """Every ``edgecv infer`` flag, one field each (click passes them by these names), so the
    command and its helpers share one typed value instead of passing 31 parameters on."""

    model: Path
    inputs: tuple[str, ...] = ()
    camera: tuple[int, ...] = ()
    streams_file: Path | None = None
    max_wait_ms: float | None = None
    realtime: bool = False
    fps_limit: float | None = None
    mosaic_path: Path | None = None
    texts: tuple[str, ...] = ()
    text_file: Path | None = None
    provider: str = "auto"
    allow_fallback: bool = False
    threads: int | None = None
    top_k: int = 5
    batch_size: int = 1
    stride: int = 1
    max_frames: int | None = None
    smooth: float | None = None
    labels: str | None = None
    # preprocessing for foreign models (see edgecv.commands.options.preprocess_options)
    preprocess: dict[str, Any] = field(default_factory=dict)  # PREPROCESS_KEYS: flags given, by name
    # outputs
    json_path: str | None = None
    csv_path: str | None = None
    save_path: Path | None = None
    report_path: Path | None = None
    show: bool = False
    show_attention: bool = False
    retries: int = 5
    quiet: bool = False
    verbose: bool = False
    verify: bool = False
    # GPU / OpenVINO backend options (see edgecv.commands.options.backend_options)
    backend: dict[str, Any] = field(default_factory=dict)  # BACKEND_KEYS: GPU / OpenVINO options

    def engine_options(self) -> Any:
        """How to open the model's engine: provider, threads and the backend options. The batch
        sizes it will see (TensorRT builds its optimisation profile for them): --batch-size, and
        with several streams one frame per stream per tick."""
        from edgecv.runtimes.engines.base import EngineOptions
        from edgecv.runtimes.streaming.stream_list import stream_specs

        specs = stream_specs(self.inputs, cameras=self.camera, streams_file=self.streams_file,
                             mosaic=self.mosaic_path) if (self.inputs or self.camera or self.streams_file) else None
        sizes = tuple(sorted({self.batch_size, len(specs) if specs else 1}))
        return EngineOptions(provider=self.provider, threads=self.threads, verbose=self.verbose,
                             allow_fallback=self.allow_fallback, batch_sizes=sizes, **engine_fields(self.backend))

    def text_items(self) -> list[str]:
        """``--text`` values, then every non-empty line of ``--text-file``; an empty ``--text``
        is a usage error (classifying nothing would still print a confident label)."""
        for text in self.texts:
            if not text.strip():
                raise click.BadParameter(f"{text!r} is {'empty' if not text else 'only whitespace'}; "
                                         f"expected words to classify", param_hint="'--text'")
        items = list(self.texts)
        if self.text_file is not None:
            items += read_text_lines(self.text_file)
        return items

    def output_paths(self) -> list[tuple[str, Any]]:
        """(flag, path) of every file the run will write ('-' = stdout is not a file)."""
        given = [("--json", self.json_path), ("--csv", self.csv_path), ("--save", self.save_path),
                 ("--report", self.report_path), ("--mosaic", self.mosaic_path)]
        return [(flag, path) for flag, path in given if path is not None and str(path) != "-"]

    def preprocess_overrides(self) -> dict[str, Any]:
        """The preprocessing flags that were given, as ``load(**overrides)`` keywords."""
        return preprocess_overrides(self.preprocess)

    def sink_paths(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("json_path", "csv_path", "save_path", "show", "stride")}

    @property
    def out(self) -> Any:
        """Human output goes to stderr when the JSON lines take stdout."""
        return sys.stderr if self.json_path == "-" else sys.stdout


def read_text_lines(path: Path) -> list[str]:
    """The non-empty lines of a ``--text-file``; a file that is not UTF-8 is named with its first
    bad line, an empty or blank one is refused (it would silently classify nothing)."""
    from edgecv.errors import InputError
    from edgecv.io import read_text_lines as numbered_lines

    numbered = numbered_lines(path, option="--text-file", expected="a UTF-8 text file, one text per line")
    lines = [line.strip() for _, line in numbered if line.strip()]
    if not lines:
        raise InputError(f"--text-file {path}: has no text (empty or blank lines only); expected one text per line")
    return lines


def check_outputs(opts: InferOptions) -> None:
    """Every output must be writable before the model loads or a frame is read, so a long run is
    never lost at its first or last write and no half-written file is left behind."""
    from edgecv.errors import InputError
    from edgecv.io import check_writable
    from edgecv.runtimes.streaming.outputs import VideoSink
    from edgecv.runtimes.streaming.stream_list import stream_specs

    stream_specs(opts.inputs, cameras=opts.camera, streams_file=opts.streams_file, mosaic=opts.mosaic_path)
    for flag, path in opts.output_paths():
        check_writable(path, option=flag)
    for flag, path in (("--save", opts.save_path), ("--mosaic", opts.mosaic_path)):
        if path is not None and path.suffix.lower() not in VideoSink.FOURCC:
            raise InputError(f"{flag} {path}: unsupported video extension (expected {', '.join(VideoSink.FOURCC)})")


@click.command("infer", epilog=EXAMPLES)
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("inputs", nargs=-1)
@click.option("--camera", type=click.IntRange(min=0), multiple=True, metavar="N",
              help="Read camera N (live: newest frame only); repeat for several cameras.")
@click.option("--streams", "streams_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read every stream listed in this file (a camera index, URL or video per line; # comments).")
@click.option("--text", "texts", multiple=True, help="Text to classify (repeatable).")
@click.option("--text-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Classify each non-empty line of this file.")
@click.option("--provider", type=ProviderType(), default="auto", show_default=True,
              help="auto, cpu, cuda, tensorrt (ONNX Runtime; auto uses CUDA only if the session really gets it) "
                   "or openvino[:CPU|GPU|NPU|AUTO].")
@click.option("--allow-fallback", is_flag=True, help="Let an explicit --provider fall back to CPU.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime intra-op threads.")
@click.option("--top-k", "top_k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per inference call for files/folders.")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Video files and live sources: classify every K-th frame.")
@click.option("--fps-limit", type=click.FloatRange(0, min_open=True), metavar="F",
              help="Classify at most F frames per second of each stream.")
@click.option("--realtime", is_flag=True, help="Video files: read at their own frame rate, not as fast as possible.")
@click.option("--max-wait-ms", type=click.FloatRange(0), default=None, metavar="MS", help="Several streams: wait at "
              "most MS for streams without a new frame [default: one frame interval].")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N frames (per stream).")
@click.option("--smooth", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="ALPHA",
              help="Exponential moving average of probabilities across frames (weight of the newest).")
@click.option("--labels", default=None, metavar="FILE|imagenet", help="Class names (foreign models).")
@preprocess_options()
@click.option("--json", "json_path", default=None, metavar="OUT.jsonl",
              help="One JSON line per image/frame ('-' = stdout).")
@click.option("--csv", "csv_path", default=None, metavar="OUT.csv", help="Per-image results as CSV.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="OUT.mp4", help="Write the annotated video (several streams: OUT_<stream>.mp4 each).")
@click.option("--mosaic", "mosaic_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="OUT.mp4", help="Several streams: write one video with every stream tiled.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the end summary as JSON.")
@click.option("--show", is_flag=True, help="Open a window with the annotated frames (q quits).")
@click.option("--show-attention", is_flag=True, help="Text models exported with attention: print who attends to whom.")
@click.option("--retries", type=click.IntRange(min=0), default=5, show_default=True,
              help="Stream reconnect attempts (back-off 0.5 s doubling to 8 s) before exit 1.")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary, no per-image lines.")
@click.option("--verbose", is_flag=True, help="Show ONNX Runtime's, OpenCV's and FFmpeg's own log.")
@click.option("--verify", is_flag=True, help="Also run up to 32 of the inputs on ONNX Runtime CPU (the file's "
              "precision) and print max |diff| and top-1 agreement (cameras/streams: synthetic frames).")
@backend_options()
def infer(**params: Any) -> None:
    """Classify images, folders, video, cameras, streams or text with an .onnx model.

    Reads labels and preprocessing from the model's edgecv metadata; foreign models use the
    flags below (defaults: RGB, x/255, ImageNet mean/std, short side 256 -> crop 224 unless the
    graph fixes the size). Prints the providers actually used and an end summary.
    """
    from edgecv.cli import restore_native_logs
    from edgecv.runtimes.classifier import load

    opts = InferOptions(preprocess=take(params, PREPROCESS_KEYS), backend=take(params, BACKEND_KEYS), **params)
    if opts.verbose:
        restore_native_logs()  # before any capture opens: FFmpeg reads its level then
    text_items = opts.text_items()
    if sum(bool(x) for x in (opts.inputs or opts.camera or opts.streams_file, text_items)) != 1:
        raise click.UsageError("give exactly one of: INPUTS (images/folders/video/URL) / --camera N / --streams FILE, "
                               "or --text/--text-file")
    check_outputs(opts)
    clf = load(opts.model, engine=opts.engine_options(), labels=opts.labels, **opts.preprocess_overrides())
    for notice in clf.engine.notices:
        click.echo(notice, err=True)
    click.echo(clf.describe(), file=opts.out)
    if opts.verify:
        _verify(clf, opts, text_items)
    if text_items:
        _infer_text(clf, text_items, opts)
        return
    _infer_stream(clf, opts)


def _infer_text(clf: Any, texts: list[str], opts: InferOptions) -> None:
    from edgecv.errors import InputError
    from edgecv.runtimes.attention_view import format_attention
    from edgecv.runtimes.streaming.outputs import JsonlSink

    if clf.task != "text":
        raise InputError(f"{clf.path.name}: is an image model (input {clf.input.describe()}); --text and "
                         f"--text-file need a text model (give images, a folder, a video, a URL or --camera N)")
    if opts.show_attention and clf.attention_name is None:
        raise InputError(f"{clf.path.name}: has no 'attention' output; export an attention model with "
                         f"attention weights to use --show-attention")
    preds = clf.predict_text(texts, top_k=opts.top_k, attention=opts.show_attention)
    out = opts.out
    sink = JsonlSink(opts.json_path) if opts.json_path else None
    try:
        for i, pred in enumerate(preds):
            if sink is not None:
                sink.write_dict({"source": pred.source, "frame": i, **pred.to_dict()})
            if not opts.quiet:
                ranked = ", ".join(f"{t.label} {t.prob:.3f}" for t in pred.top_k)
                click.echo(f"{pred.label:<12} {pred.prob:6.3f}  {_clip(pred.source, 60)!r}  [{ranked}]", file=out)
            if opts.show_attention and pred.attention is not None:
                click.echo(format_attention(pred.tokens or [], pred.attention), file=out)
    finally:
        if sink is not None:
            sink.close()
    t = preds[0].timings if preds else None
    if t is not None:
        click.echo(f"{len(preds)} text{'' if len(preds) == 1 else 's'}: tokenize {t.preprocess_ms:.2f} ms, inference {t.inference_ms:.2f} ms, "
                   f"postprocess {t.postprocess_ms:.2f} ms (one batch)", file=out)


def _verify(clf: Any, opts: InferOptions, texts: list[str]) -> None:
    """--verify: the inputs again on ONNX Runtime CPU (the file's own arithmetic), raw scores compared."""
    from dataclasses import replace

    from edgecv.runtimes.classifier import load
    from edgecv.runtimes.profiling.job import compare_outputs

    x, source = _verify_inputs(clf, opts, texts)
    if x is None:  # a text model without tokenizer: the run itself says why
        return
    ref = load(opts.model, engine=replace(opts.engine_options(), provider="cpu", allow_fallback=False),
               labels=opts.labels, **opts.preprocess_overrides())
    step = opts.batch_size
    check = compare_outputs([clf.run(x[i:i + step])[0] for i in range(0, len(x), step)],
                            [ref.run(x[i:i + step])[0] for i in range(0, len(x), step)])
    top1, n = check["top1_agreement"], check["n"]
    agree = "" if top1 is None else f", top-1 agreement {100 * top1:.1f}% ({round(top1 * n)}/{n})"
    click.echo(f"verify: {clf.engine.backend} {clf.provider} {clf.precision} vs {ref.engine.backend} "
               f"{ref.provider} {ref.precision} on {source}: max |diff| {check['max_abs']:.3g}{agree}", file=opts.out)


def _verify_inputs(clf: Any, opts: InferOptions, texts: list[str]) -> tuple[Any, str]:
    """The run's own inputs as one prepared batch: texts, image files, a video's first frames;
    synthetic frames for a camera or a stream (they cannot be read twice)."""
    import contextlib

    import cv2
    import numpy as np

    from edgecv.errors import InputError
    from edgecv.preprocess import load_image
    from edgecv.runtimes.streaming.sources import collect_images, is_url, is_video

    if texts:
        length = clf.input.shape[1] if len(clf.input.shape) > 1 else None
        ids = clf.tokenizer.encode_batch(texts, length=length) if clf.tokenizer is not None else None
        return (None, "") if ids is None else (ids.astype(clf.input.dtype), f"{len(texts)} texts")
    given = [str(p) for p in opts.inputs]
    if len(given) == 1 and is_video(given[0]) and not is_url(given[0]):
        cap, frames = cv2.VideoCapture(given[0]), []
        while len(frames) < 16 and (got := cap.read())[0]:
            frames.append(got[1])
        cap.release()
        if frames:
            return clf.preprocess(frames), f"the first {len(frames)} frames of {Path(given[0]).name}"
    elif given and not is_url(given[0]):
        images: list[Any] = []
        for path in collect_images(given)[:32]:
            with contextlib.suppress(InputError):  # unreadable: skipped here as the run skips it
                images.append(load_image(path))
        if images:
            return clf.preprocess(images), f"{len(images)} images"
    frames = list(np.random.default_rng(0).integers(0, 256, (16, 480, 640, 3), dtype=np.uint8))
    return clf.preprocess(frames), "16 synthetic frames (a live source cannot be read twice)"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _infer_stream(clf: Any, opts: InferOptions) -> None:
    """Images, folders, video, camera or URL through the stream loop (several: ``_infer_streams``), then the summary."""
    import threading

    from edgecv.errors import InputError
    from edgecv.io import write_json_atomic
    from edgecv.runtimes.streaming.outputs import format_summary
    from edgecv.runtimes.streaming.sources import ImageSource, open_source
    from edgecv.runtimes.streaming.stream import StreamOptions, run_stream
    from edgecv.runtimes.streaming.stream_list import stream_specs
    from edgecv.runtimes.streaming.stream_outputs import open_sinks, progress_bar, result_printer

    if clf.task != "image":
        raise InputError(f"{clf.path.name}: is a text model (input {clf.input.describe()}); expected texts "
                         f"through --text or --text-file, not images or video")
    specs = stream_specs(opts.inputs, cameras=opts.camera, streams_file=opts.streams_file, mosaic=opts.mosaic_path)
    if specs is not None:
        return _infer_streams(clf, opts, specs)
    source = open_source(opts.inputs, camera=opts.camera[0] if opts.camera else None, stride=opts.stride,
                         retries=opts.retries, fps_limit=opts.fps_limit, realtime=opts.realtime)
    is_images = isinstance(source, ImageSource)
    if is_images and opts.smooth is not None:  # the stream loop never smooths unrelated images
        click.echo("notice: --smooth applies to video, camera and stream inputs; images are classified one "
                   "by one (not smoothed)", err=True)
    stop = threading.Event()
    sinks = open_sinks(source, stop, is_images=is_images, **opts.sink_paths())
    bar = progress_bar(source, stride=opts.stride, is_images=is_images)
    stream_opts = StreamOptions(top_k=opts.top_k, smooth=opts.smooth, max_frames=opts.max_frames,
                                batch_size=opts.batch_size if is_images else 1)
    try:
        report = run_stream(clf, source, stream_opts, sinks=sinks, stop=stop, on_result=result_printer(
            opts.out, bar, lines=is_images and not opts.quiet and opts.json_path != "-"))
    finally:
        if bar is not None:
            bar.close()
    click.echo(format_summary(report, verbose=opts.verbose or not is_images), file=opts.out)
    if opts.report_path is not None:
        write_json_atomic(opts.report_path, report.to_dict())
    if report.frames == 0 and not report.interrupted:
        raise InputError(f"{source.name}: no frames could be classified"
                         + (f" ({len(report.unreadable)} unreadable inputs)" if report.unreadable else ""))


def _infer_streams(clf: Any, opts: InferOptions, specs: list[str]) -> None:
    """Several streams, one batch per tick; exit 1 (one line) only when every stream was lost."""
    import threading

    from edgecv.io import write_json_atomic
    from edgecv.runtimes.streaming.multistream import MultiStreamOptions, format_multi_summary, run_multistream
    from edgecv.runtimes.streaming.sources import open_streams
    from edgecv.runtimes.streaming.stream_outputs import open_stream_sinks

    sources = open_streams(specs, stride=opts.stride, retries=opts.retries, fps_limit=opts.fps_limit,
                           realtime=opts.realtime)
    stop = threading.Event()
    sinks, per_stream = open_stream_sinks(sources, stop, mosaic_path=opts.mosaic_path, **opts.sink_paths())
    report = run_multistream(clf, sources, MultiStreamOptions(
        top_k=opts.top_k, smooth=opts.smooth, max_frames=opts.max_frames, max_wait_ms=opts.max_wait_ms),
        sinks=sinks, stream_sinks=per_stream, stop=stop, on_event=lambda m: click.echo(f"warning: {m}", file=opts.out))
    click.echo(format_multi_summary(report), file=opts.out)
    if opts.report_path is not None:
        write_json_atomic(opts.report_path, report.to_dict())
    report.raise_if_all_lost()
