"""Provider selection against a test double of ONNX Runtime: the notices name what a session
really got, ``auto`` is quiet on a machine without an NVIDIA GPU, and the process-wide log level
is set once, not per session."""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Callable

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import ProviderError  # noqa: E402
from edgecv.runtimes.engines import session as S  # noqa: E402

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def fake_ort(available: list[str], grant: Callable[[list[str]], list[str]]) -> types.ModuleType:
    """An ``onnxruntime`` stand-in: ``grant(requested chain)`` -> what ``get_providers()`` reports."""
    ort = types.ModuleType("onnxruntime")
    ort.requested = []  # type: ignore[attr-defined]
    ort.provider_options = []  # type: ignore[attr-defined]
    ort.severity_calls = []  # type: ignore[attr-defined]

    class SessionOptions:
        def add_session_config_entry(self, key: str, value: str) -> None:
            pass

    class InferenceSession:
        def __init__(self, path: str, sess_options: Any = None, providers: list[str] | None = None,
                     provider_options: list[dict[str, str]] | None = None) -> None:
            ort.requested.append(list(providers or []))  # type: ignore[attr-defined]
            ort.provider_options.append(provider_options)  # type: ignore[attr-defined]
            self._got = grant(list(providers or []))

        def get_providers(self) -> list[str]:
            return self._got

    ort.SessionOptions = SessionOptions  # type: ignore[attr-defined]
    ort.InferenceSession = InferenceSession  # type: ignore[attr-defined]
    ort.GraphOptimizationLevel = types.SimpleNamespace(  # type: ignore[attr-defined]
        ORT_DISABLE_ALL=0, ORT_ENABLE_BASIC=1, ORT_ENABLE_EXTENDED=2, ORT_ENABLE_ALL=99)
    ort.get_available_providers = lambda: list(available)  # type: ignore[attr-defined]
    ort.set_default_logger_severity = ort.severity_calls.append  # type: ignore[attr-defined]
    ort.preload_dlls = lambda: None  # type: ignore[attr-defined]
    return ort


@pytest.fixture
def model(tmp_path, monkeypatch):
    """A real (tiny) ONNX file: TensorRT's options are built from the graph's inputs; the TensorRT
    cache goes to a temporary folder."""
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path / "cache"))
    return F.image_model(tmp_path / "m.onnx")


def _use(monkeypatch, ort: types.ModuleType, *, gpu: bool) -> types.ModuleType:
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    monkeypatch.setattr(S, "nvidia_gpu_present", lambda: gpu)
    monkeypatch.setattr(S, "_ort_log_severity", None)
    return ort


def test_tensorrt_fallback_names_cuda_not_cpu(monkeypatch, model):
    _use(monkeypatch, fake_ort(ALL, lambda chain: ["CUDAExecutionProvider", "CPUExecutionProvider"]), gpu=True)
    info = S.create_session(model, provider="tensorrt", allow_fallback=True)
    assert info.provider == "cuda"
    assert info.notices == ["notice: TENSORRT is not usable here; running on CUDA"]


def test_tensorrt_without_fallback_is_an_error_naming_what_was_got(monkeypatch, model):
    _use(monkeypatch, fake_ort(ALL, lambda chain: ["CUDAExecutionProvider", "CPUExecutionProvider"]), gpu=True)
    with pytest.raises(ProviderError, match="'tensorrt' is not usable here .*gave CUDAExecutionProvider"):
        S.create_session(model, provider="tensorrt")


def test_tensorrt_missing_from_build_falls_back_without_asking_for_it(monkeypatch, model):
    ort = _use(monkeypatch, fake_ort(ALL[1:], lambda chain: chain), gpu=True)
    info = S.create_session(model, provider="tensorrt", allow_fallback=True)
    assert ort.requested == [["CUDAExecutionProvider", "CPUExecutionProvider"]]  # ORT would warn about TRT
    assert info.notices == ["notice: TENSORRT is not usable here; running on CUDA"]


def test_auto_on_cpu_is_quiet_without_an_nvidia_gpu(monkeypatch, model):
    _use(monkeypatch, fake_ort(ALL, lambda chain: ["CPUExecutionProvider"]), gpu=False)
    info = S.create_session(model, provider="auto")
    assert info.provider == "cpu" and info.notices == []


def test_auto_on_cpu_with_a_gpu_it_could_not_use_is_one_notice(monkeypatch, model):
    _use(monkeypatch, fake_ort(ALL, lambda chain: ["CPUExecutionProvider"]), gpu=True)
    info = S.create_session(model, provider="auto")
    assert len(info.notices) == 1 and "CUDA is not usable here" in info.notices[0]
    assert info.notices[0].endswith("running on CPU")


def test_auto_with_a_gpu_but_a_cpu_only_build_says_so(monkeypatch, model):
    _use(monkeypatch, fake_ort(["CPUExecutionProvider"], lambda chain: chain), gpu=True)
    info = S.create_session(model, provider="auto")
    assert len(info.notices) == 1 and "no CUDA provider" in info.notices[0]


def test_auto_that_gets_cuda_is_quiet(monkeypatch, model):
    _use(monkeypatch, fake_ort(ALL, lambda chain: chain), gpu=True)
    info = S.create_session(model, provider="auto")
    assert info.provider == "cuda" and info.notices == []


def test_ort_log_level_is_set_once_per_process(monkeypatch, model):
    ort = _use(monkeypatch, fake_ort(ALL, lambda chain: ["CPUExecutionProvider"]), gpu=False)
    for _ in range(3):
        S.create_session(model, provider="cpu")
    assert ort.severity_calls == [4]
    S.create_session(model, provider="cpu", verbose=True)  # a change of mind is applied, once
    S.create_session(model, provider="cpu", verbose=True)
    assert ort.severity_calls == [4, 0]


def test_cpu_sessions_are_created_without_provider_options(monkeypatch, model):
    """The CPU path is unchanged: no options to pass, nothing read from the model for them."""
    ort = _use(monkeypatch, fake_ort(ALL, lambda chain: ["CPUExecutionProvider"]), gpu=False)
    info = S.create_session(model, provider="cpu")
    assert ort.provider_options == [None] and info.details == {}


def test_auto_asks_cuda_with_its_defaults(monkeypatch, model):
    ort = _use(monkeypatch, fake_ort(ALL, lambda chain: ["CPUExecutionProvider"]), gpu=False)
    S.create_session(model, provider="auto")
    assert ort.requested == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    assert ort.provider_options == [[{"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}, {}]]
