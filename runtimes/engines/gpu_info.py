"""What GPU stack this machine has: GPU name and compute capability, CUDA driver, cuDNN and
TensorRT versions (standard library only; never imports torch and never initialises ONNX Runtime).

A TensorRT engine is only valid for the GPU, TensorRT version and model it was built for, so the
engine cache is keyed by these facts (see ``tensorrt.py``), and every GPU report names them. Each
probe is cheap and cached, returns None when the fact cannot be known (no driver, a CPU-only
machine, a Jetson without ``nvidia-smi``), and never raises: a missing fact must never stop a run.
Probes ask pip's metadata first (the ``edgecv[cuda]`` wheels, the ``tensorrt`` wheel), then the
shared libraries themselves through ``ctypes``.
"""
from __future__ import annotations

import ctypes
import functools
import re
import shutil
import subprocess
from importlib import metadata
from typing import Any, Sequence

# pip distributions that carry each library (CUDA 13 and 12 builds; the plain names are older)
CUDA_DISTS = ("nvidia-cuda-runtime", "nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime-cu12")
CUDNN_DISTS = ("nvidia-cudnn-cu13", "nvidia-cudnn-cu12", "nvidia-cudnn")
TENSORRT_DISTS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-libs", "tensorrt-cu12-libs",
                  "tensorrt-libs")
_LIBCUDA = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
_LIBCUDNN = ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so", "cudnn64_9.dll", "cudnn64_8.dll")
_LIBNVINFER = ("libnvinfer.so.10", "libnvinfer.so.11", "libnvinfer.so.8", "libnvinfer.so", "nvinfer_10.dll",
               "nvinfer_11.dll", "nvinfer.dll")


def dist_version(names: Sequence[str]) -> str | None:
    """The version of the first installed pip distribution in ``names``."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _load(names: Sequence[str]) -> Any:
    """The first shared library in ``names`` that loads, or None."""
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=None)
def tensorrt_version() -> str | None:
    """"10.9.0" from the ``tensorrt`` wheel or ``libnvinfer``'s ``getInferLibVersion()``."""
    found = dist_version(TENSORRT_DISTS)
    if found:
        return found
    lib = _load(_LIBNVINFER)
    if lib is None or not hasattr(lib, "getInferLibVersion"):
        return None
    lib.getInferLibVersion.restype = ctypes.c_int32
    return _decode_version(int(lib.getInferLibVersion()))


@functools.lru_cache(maxsize=None)
def cudnn_version() -> str | None:
    """"9.10.2" from the cuDNN wheel or ``cudnnGetVersion()``."""
    found = dist_version(CUDNN_DISTS)
    if found:
        return found
    lib = _load(_LIBCUDNN)
    if lib is None or not hasattr(lib, "cudnnGetVersion"):
        return None
    lib.cudnnGetVersion.restype = ctypes.c_size_t
    return _decode_version(int(lib.cudnnGetVersion()))


def _decode_version(value: int) -> str:
    """NVIDIA's packed version numbers: major * 10000 + minor * 100 + patch from TensorRT 10 and
    cuDNN 9 on, major * 1000 + minor * 100 + patch before."""
    if value >= 10000:
        return f"{value // 10000}.{value // 100 % 100}.{value % 100}"
    return f"{value // 1000}.{value // 100 % 10}.{value % 100}"


def _libcuda() -> Any:
    """The CUDA driver library, initialised, or None (no driver, no GPU)."""
    lib = _load(_LIBCUDA)
    if lib is None:
        return None
    try:
        return lib if lib.cuInit(0) == 0 else None
    except AttributeError:
        return None


@functools.lru_cache(maxsize=None)
def cuda_driver_version() -> str | None:
    """The CUDA version the driver supports ("12.8"), from ``cuDriverGetVersion``."""
    lib = _libcuda()
    value = ctypes.c_int(0)
    if lib is None or lib.cuDriverGetVersion(ctypes.byref(value)) != 0:
        return None
    return f"{value.value // 1000}.{value.value % 1000 // 10}"


@functools.lru_cache(maxsize=None)
def gpu_identity(device_id: int = 0) -> dict[str, Any] | None:
    """``{"name": "NVIDIA H200", "compute_capability": "9.0"}`` for GPU ``device_id`` (as CUDA
    numbers it, after ``CUDA_VISIBLE_DEVICES``), from the driver library, else ``nvidia-smi``."""
    lib = _libcuda()
    if lib is not None:
        dev, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        if lib.cuDeviceGet(ctypes.byref(dev), int(device_id)) == 0 and lib.cuDeviceGetName(name, 256, dev) == 0:
            cc = None  # attributes 75/76: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR/MINOR
            if (lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) == 0
                    and lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) == 0):
                cc = f"{major.value}.{minor.value}"
            return {"name": name.value.decode(errors="replace").strip(), "compute_capability": cc}
    return _smi_identity(device_id)


def _smi_identity(device_id: int) -> dict[str, Any] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-i", str(device_id), "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    line = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    if not line:
        return None
    name, _, cc = (part.strip() for part in line.partition(","))
    return {"name": name, "compute_capability": cc if re.fullmatch(r"\d+\.\d+", cc) else None}


def gpu_key(device_id: int = 0) -> str:
    """A folder-name-safe GPU identity: ``nvidia-h200-sm90``; ``gpu0`` when nothing is known
    (then the device index is the best key there is)."""
    ident = gpu_identity(device_id)
    if not ident or not ident.get("name"):
        return f"gpu{device_id}"
    slug = re.sub(r"[^a-z0-9]+", "-", ident["name"].lower()).strip("-")
    cc = ident.get("compute_capability")
    return f"{slug}-sm{cc.replace('.', '')}" if cc else slug


def gpu_stack() -> dict[str, Any]:
    """The GPU software stack for report headers (values None when unknown)."""
    return {"cuda_driver": cuda_driver_version(),
            "cuda_runtime": dist_version(CUDA_DISTS),
            "cudnn": cudnn_version(),
            "tensorrt": tensorrt_version()}
