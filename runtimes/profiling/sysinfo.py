"""The environment header every profile report carries (no torch import).

Latency numbers are meaningless without the machine they came from: CPU model, cores, memory,
GPU, library versions and the int8-relevant CPU flags (AVX2, AVX-512, VNNI decide whether int8
beats float32 at all).
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any, Iterable

from edgecv.hardware import INT8_FLAGS, VNNI_FLAGS, read_cpuinfo, usable_cores


def _version(dist: Iterable[str]) -> str | None:
    for name in dist:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def _gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def collect(providers_used: Iterable[str] = ()) -> dict[str, Any]:
    """A JSON-friendly description of this machine and the inference stack; when a GPU provider
    ran, also its stack (CUDA driver, CUDA runtime, cuDNN, TensorRT versions): a GPU latency
    means little without them, and a CPU-only report stays as it was."""
    providers_used = sorted(set(providers_used))
    model, flags = read_cpuinfo()
    flags = flags or frozenset()
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
        physical = psutil.cpu_count(logical=False)
    except ImportError:  # psutil is a base dependency, but keep the header best-effort
        mem_gb, physical = None, None
    affinity = usable_cores()
    try:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    except ImportError:
        available = []
    info = {
        "cpu": model,
        "cores_logical": os.cpu_count(),
        "cores_physical": physical,
        "cores_usable": affinity,
        "memory_gb": mem_gb,
        "gpus": _gpus(),
        "int8_flags": [f for f in INT8_FLAGS if f in flags],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": {
            "onnxruntime": _version(("onnxruntime-gpu", "onnxruntime")),
            "onnx": _version(("onnx",)),
            "numpy": _version(("numpy",)),
            "opencv": _version(("opencv-python", "opencv-python-headless", "opencv-contrib-python")),
            "edgecv": _version(("edgecv",)),
        },
        "providers_available": available,
        "providers_used": providers_used,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if any(p in _GPU_PROVIDERS for p in providers_used):
        from edgecv.runtimes.engines.gpu_info import gpu_stack

        info["gpu_stack"] = gpu_stack()
    return info


def vnni_note(info: dict[str, Any]) -> str:
    """Why int8 may or may not beat float32 on this CPU, in one line."""
    flags = set(info.get("int8_flags", []))
    if flags & VNNI_FLAGS:
        return "CPU has VNNI int8 dot-product instructions (int8 kernels can beat float32)"
    if "avx2" in flags:
        return "CPU has AVX2 but no VNNI: int8 gains are small; quantise with reduce_range"
    return "no AVX2/VNNI int8 instructions detected: int8 is likely slower than float32"


def header_lines(info: dict[str, Any]) -> list[str]:
    """Human-readable environment header."""
    v = info["versions"]
    cores = f"{info['cores_usable']} usable / {info['cores_logical']} logical"
    if info.get("cores_physical"):
        cores += f" / {info['cores_physical']} physical"
    lines = [f"CPU: {info['cpu']} ({cores}), memory {info['memory_gb']} GB, "
             f"int8 flags: {', '.join(info['int8_flags']) or 'none'}"]
    lines.append("GPU: " + ("; ".join(info["gpus"]) if info["gpus"] else "none"))
    stack = info.get("gpu_stack")
    if stack:
        names = (("cuda_driver", "CUDA driver"), ("cuda_runtime", "CUDA runtime"), ("cudnn", "cuDNN"),
                 ("tensorrt", "TensorRT"))
        lines.append("GPU stack: " + ", ".join(f"{label} {stack.get(key) or 'unknown'}" for key, label in names))
    lines.append(f"onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}, opencv {v['opencv']}; "
                 f"providers used: {', '.join(info['providers_used']) or '-'}")
    if info.get("load_average"):
        lines.append("load average: " + ", ".join(f"{x:.2f}" for x in info["load_average"]))
    return lines
