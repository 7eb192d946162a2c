"""A torch-free ONNX Runtime classifier: ``load(path).predict(images)`` / ``.predict_text(texts)``.

The model's contract (``edgecv.*`` metadata) supplies labels, preprocessing and the tokenizer;
a foreign model gets a spec derived from its graph input plus overrides (see ``foreign.py``).
Inputs are checked against the graph's real inputs (rank, dtype incl. float16, fixed vs dynamic
dims); fixed-batch models are run in chunks; outputs that are already probabilities are not
softmaxed again and ``[N, C, 1, 1]`` outputs are squeezed; an output that is not classifier-shaped
(a feature map, boxes) is refused at load time, or on each run when the graph leaves that shape dynamic.

The three stages (:meth:`Classifier.preprocess`, :meth:`Classifier.run`,
:meth:`Classifier.postprocess`) are public so the stream loop can time and overlap them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence, Union

import numpy as np

from edgecv.contract import ModelContract
from edgecv.errors import InputError, ModelError
from edgecv.postprocess import squeeze_logits, to_probabilities
from edgecv.postprocess import top_k as rank_top_k
from edgecv.preprocess import PreprocessSpec, load_image, preprocess_image
from edgecv.runtimes.engines.base import Engine, EngineOptions, open_engine
from edgecv.runtimes.foreign import PreprocessOverrides, build_spec
from edgecv.runtimes.inputs import (  # noqa: F401
    ORT_DTYPES,
    InputInfo,
    check_input,
    check_output_shape,
)
from edgecv.runtimes.labels import fit_labels, load_labels
from edgecv.tokenizer import WordTokenizer

ImageLike = Union[np.ndarray, str, os.PathLike]


class TopK(NamedTuple):
    """One ranked class (a tuple: cheap to build for every frame)."""

    label: str
    index: int
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "prob": round(self.prob, 6)}


@dataclass
class Timings:
    """Milliseconds spent per stage for the call that produced a prediction (shared by a batch)."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass
class Prediction:
    """The ranked classes for one image or text."""

    top_k: list[TopK]
    probs: np.ndarray  # (C,) probabilities
    source: str = ""
    timings: Timings = field(default_factory=Timings)
    tokens: list[str] | None = None  # text models: the tokens the model saw
    attention: np.ndarray | None = None  # (layers, heads, T, T) when the model exports it

    @property
    def label(self) -> str:
        return self.top_k[0].label

    @property
    def index(self) -> int:
        return self.top_k[0].index

    @property
    def prob(self) -> float:
        return self.top_k[0].prob

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "top_k": [t.to_dict() for t in self.top_k],
                "latency_ms": round(self.timings.total_ms, 3)}


class Classifier:
    """An image or text classifier on an inference engine (see :func:`load`)."""

    def __init__(self, engine: Engine, *, labels: Sequence[str] | str | None = None,
                 overrides: PreprocessOverrides | None = None) -> None:
        self.engine = engine
        self.path = Path(engine.path)
        name = self.path.name
        self.contract: ModelContract | None = ModelContract.from_metadata(engine.metadata, source=name)
        self.input = self._graph_input()
        is_int = np.issubdtype(self.input.dtype, np.integer)
        self.task = self.contract.task if self.contract else ("text" if is_int else "image")
        self._pick_outputs()
        labels_from = None
        if isinstance(labels, (str, os.PathLike)):
            labels_from = Path(labels).name if Path(labels).is_file() else None
            labels = load_labels(labels)
        self._labels = list(labels) if labels else (list(self.contract.labels) if self.contract else None)
        self.num_classes = self._num_classes_from_graph()
        if self.num_classes is not None:
            self._labels = fit_labels(self._labels, self.num_classes, source=name, labels_from=labels_from)
        self.spec: PreprocessSpec | None = None
        self.tokenizer: WordTokenizer | None = None
        if self.task == "image":
            base = self.contract.preprocess if self.contract else None
            self.spec = build_spec(input_shape=self.input.shape, input_dtype=np.dtype(self.input.dtype).name,
                                   base=base, overrides=overrides)
            check_input(np.zeros(self.spec.input_shape(1), dtype=self.input.dtype), self.input, source=name)
        elif self.contract and self.contract.tokenizer:
            self.tokenizer = WordTokenizer.from_dict(self.contract.tokenizer)

    def _graph_input(self) -> InputInfo:
        """The one real graph input; an integer input shaped like an image is refused here, before
        it could be mistaken for a text model's token ids."""
        name = self.path.name
        inputs = list(self.engine.inputs)
        if len(inputs) != 1:
            raise ModelError(f"{name}: has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                             f"expected one image or token-id input")
        info = inputs[0]
        task = self.contract.task if self.contract else None
        if np.issubdtype(info.dtype, np.integer) and (task == "image" or (task is None and len(info.shape) == 4)):
            raise ModelError(f"{name}: input {info.name!r} {info.describe()} is an integer image input; expected "
                             f"float32 or float16 pixels for an image model, or (N, T) token ids for a text model")
        return info

    def _pick_outputs(self) -> None:
        """Choose the scores output (and an optional attention output) and check the scores are
        classifier-shaped now, or on every run where the graph leaves the shape dynamic."""
        outputs = {o.name: o for o in self.engine.outputs}
        io = self.contract.io if self.contract else {}
        self.output_name: str = io.get("output") if io.get("output") in outputs else next(iter(outputs))
        attn = io.get("attention") or ("attention" if "attention" in outputs else None)
        self.attention_name = attn if attn in outputs and attn != self.output_name else None
        self.softmax_in_graph: bool | None = io.get("probabilities") if self.contract else None
        shape = outputs[self.output_name].shape
        self._check_output_each_run = check_output_shape(shape, name=self.output_name, source=self.path.name)

    # ------------------------------------------------------------------ properties
    @property
    def labels(self) -> list[str]:
        return list(self._labels or [])

    @property
    def providers(self) -> list[str]:
        return list(self.engine.providers)

    @property
    def provider(self) -> str:
        return self.engine.device

    @property
    def precision(self) -> str:
        return self.engine.precision

    @property
    def threads(self) -> int | None:
        return self.engine.threads

    def describe(self) -> str:
        """One line: model, task, input, what really runs it (backend, providers, precision), threads."""
        threads = self.threads if self.threads is not None else "default"
        return (f"{self.path.name}: {self.task} classifier, input {self.input.name} {self.input.describe()}, "
                f"{len(self.labels) or '?'} classes, {self.engine.backend} provider {', '.join(self.providers)}, "
                f"precision {self.precision}, threads {threads}")

    # ------------------------------------------------------------------ stages
    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """BGR uint8 images -> the input batch (N, C, H, W) / (N, H, W, C) in the graph's dtype."""
        if self.spec is None:
            raise InputError(f"{self.path.name}: is a text model ({self.input.describe()}); expected an image "
                             f"model for images (call predict_text() for texts)")
        return np.stack([preprocess_image(img, self.spec) for img in images])

    def run(self, x: np.ndarray, *, attention: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated ``session.run`` -> (raw scores, attention or None); splits batches for
        fixed-batch models (the last chunk is zero-padded and trimmed)."""
        check_input(x, self.input, source=self.path.name)
        names = [self.output_name] + ([self.attention_name] if attention and self.attention_name else [])
        fixed = self.input.fixed_batch
        if fixed is None or fixed == x.shape[0]:
            outs = self.engine.run(names, {self.input.name: x})
        else:
            chunks: list[list[np.ndarray]] = []
            for start in range(0, x.shape[0], fixed):
                part = x[start:start + fixed]
                n = part.shape[0]
                if n < fixed:
                    part = np.concatenate([part, np.zeros((fixed - n, *part.shape[1:]), dtype=part.dtype)])
                chunks.append([o[:n] for o in self.engine.run(names, {self.input.name: part})])
            outs = [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]
        return outs[0], (outs[1] if len(outs) > 1 else None)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> (N, C) float32 probabilities (softmax applied only to logits)."""
        if self._check_output_each_run:  # the graph's output shape is dynamic: check what came out
            check_output_shape(raw.shape, name=self.output_name, source=self.path.name, observed=True)
        scores = squeeze_logits(raw).astype(np.float32, copy=False)
        if self.softmax_in_graph is True:
            return scores
        if self.softmax_in_graph is False:
            # in-place softmax: right after inference the caches are cold and every extra
            # temporary shows up in the per-frame overhead
            e = np.exp(scores - scores.max(axis=-1, keepdims=True))
            e /= e.sum(axis=-1, keepdims=True)
            return e
        return to_probabilities(scores)

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[list[TopK]]:
        """(N, C) probabilities -> per row the ``k`` best classes, best first (ties: lower class
        index first); the ranking is :func:`edgecv.postprocess.top_k`, this only names classes."""
        if self._labels is None:
            self._labels = fit_labels(None, probs.shape[-1])
        elif len(self._labels) != probs.shape[-1]:
            raise ModelError(f"{self.path.name}: output has {probs.shape[-1]} classes but "
                             f"{len(self._labels)} labels are set")
        labels = self._labels
        idx, vals = rank_top_k(probs, k)
        return [[TopK(labels[i], i, v) for i, v in zip(row_idx, row_vals)]
                for row_idx, row_vals in zip(idx.tolist(), vals.tolist())]

    # ------------------------------------------------------------------ public API
    def predict(self, images: ImageLike | Sequence[ImageLike], top_k: int = 5) -> Prediction | list[Prediction]:
        """Classify one image (BGR uint8 array or path) -> Prediction, or a list/batch -> list."""
        single = _is_single_image(images)
        items = [images] if single else list(images)  # type: ignore[list-item]
        if not items:
            return []
        sources = [str(i) if isinstance(i, (str, os.PathLike)) else f"array[{n}]" for n, i in enumerate(items)]
        t0 = time.perf_counter_ns()
        arrays = [load_image(i) if isinstance(i, (str, os.PathLike)) else i for i in items]
        x = self.preprocess(arrays)
        preds = self._predict_prepared(x, top_k=top_k, sources=sources, t_pre_ns=time.perf_counter_ns() - t0)
        return preds[0] if single else preds

    def predict_tensor(self, x: np.ndarray, top_k: int = 5) -> list[Prediction]:
        """Classify an already preprocessed batch (validated against the graph input)."""
        return self._predict_prepared(x, top_k=top_k, sources=[f"tensor[{i}]" for i in range(len(x))], t_pre_ns=0)

    def predict_text(self, texts: str | Sequence[str], top_k: int = 5, *,
                     attention: bool = False) -> Prediction | list[Prediction]:
        """Classify one text -> Prediction, or a list -> list; ``attention=True`` attaches the
        model's attention weights (layers, heads, T, T) when it exports them."""
        if self.task != "text":
            raise InputError(f"{self.path.name}: is an image model ({self.input.describe()}); expected a text "
                             f"model for texts (call predict() for images)")
        if self.tokenizer is None:
            raise ModelError(f"{self.path.name}: text model without an edgecv tokenizer in its metadata; "
                             f"export it with edgecv to embed the vocabulary")
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not items:
            return []
        t0 = time.perf_counter_ns()
        fixed_len = self.input.shape[1] if len(self.input.shape) > 1 else None
        ids = self.tokenizer.encode_batch(items, length=fixed_len).astype(self.input.dtype)  # (N, T)
        preds = self._predict_prepared(ids, top_k=top_k, sources=items, t_pre_ns=time.perf_counter_ns() - t0,
                                       attention=attention)
        for row, pred in zip(ids, preds):
            pred.tokens = [self.tokenizer.vocab[i] if i < self.tokenizer.vocab_size else "<unk>"
                           for i in row if i != 0]
        return preds[0] if single else preds

    def stream(self, sources: Sequence[Any], *, top_k: int = 5, smooth: float | None = None,
               max_frames: int | None = None, max_wait_ms: float | None = None, stride: int = 1,
               fps_limit: float | None = None, realtime: bool = False, retries: int = 5) -> Iterator[Any]:
        """Classify live streams together: camera indexes, stream URLs, video paths (or opened
        ``Source`` objects) -> a generator of per-frame results (``.stream`` is the stream id,
        ``.top_k``, ``.frame``, ``.age_ms``). Every tick the newest frame of each stream runs in
        ONE batch; a lost stream is left out while the others go on. Closing the generator (or
        leaving the ``for`` loop) stops every capture. ``max_frames`` counts per stream.

        >>> for r in clf.stream([0, "rtsp://cam/2"], smooth=0.3):   # doctest: +SKIP
        ...     print(r.stream, r.top_k[0].label)
        """
        from edgecv.runtimes.streaming.multistream import stream_results

        yield from stream_results(self, sources, top_k=top_k, smooth=smooth, max_frames=max_frames,
                                  max_wait_ms=max_wait_ms, stride=stride, fps_limit=fps_limit,
                                  realtime=realtime, retries=retries)

    def _predict_prepared(self, x: np.ndarray, *, top_k: int, sources: Sequence[str], t_pre_ns: int,
                          attention: bool = False) -> list[Prediction]:
        t1 = time.perf_counter_ns()
        raw, attn = self.run(x, attention=attention)
        t2 = time.perf_counter_ns()
        probs = self.postprocess(raw)
        ranked = self.top_k(probs, top_k)
        t3 = time.perf_counter_ns()
        timings = Timings(t_pre_ns / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6)
        return [Prediction(ranked[i], probs[i], sources[i], timings,
                           attention=None if attn is None else attn[i]) for i in range(len(ranked))]

    def _num_classes_from_graph(self) -> int | None:
        out = next(o for o in self.engine.outputs if o.name == self.output_name)
        dims = [d for d in (out.shape or [])[1:] if not (isinstance(d, int) and d == 1)]
        if len(dims) == 1 and isinstance(dims[0], int):
            return dims[0]
        return len(self._labels) if self._labels else None


def _is_single_image(images: Any) -> bool:
    if isinstance(images, (str, os.PathLike)):
        return True
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return False
        return True
    return False


def load(path: str | os.PathLike[str], provider: str = "auto", threads: int | None = None, *,
         verbose: bool = False, allow_fallback: bool = False, labels: Sequence[str] | str | None = None,
         engine: EngineOptions | None = None, **overrides: Any) -> Classifier:
    """Open an ``.onnx`` classifier on ONNX Runtime (torch-free).

    ``provider``: auto | cpu | cuda | tensorrt (auto keeps CUDA only if the session really gets
    it) | openvino[:DEVICE]; ``threads``: intra-op threads (None = the backend's default);
    ``engine``: every other backend option (:class:`EngineOptions`; when given, its provider,
    threads, verbose and allow_fallback are used instead of the arguments); ``labels``: a list, a
    labels file or ``"imagenet"``; ``overrides``: preprocessing for foreign models -- ``size``,
    ``resize``, ``crop``, ``stretch``, ``scale``, ``mean``, ``std``, ``bgr`` (see ``foreign.py``).

    >>> clf = load("model.onnx", provider="cpu", threads=2)           # doctest: +SKIP
    >>> clf.predict("cat.jpg").label                                   # doctest: +SKIP
    """
    ov = PreprocessOverrides.from_kwargs(overrides)
    options = engine or EngineOptions(provider=provider, threads=threads, verbose=verbose,
                                      allow_fallback=allow_fallback)
    return Classifier(open_engine(path, options), labels=labels, overrides=ov)
