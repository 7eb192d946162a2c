"""What this machine's CPU offers: usable cores and instruction-set flags (stdlib only).

One place for what training (data-loader workers), the demo (thread counts), the exporter
(int8 ``reduce_range``) and the profiler (the environment header) all need to know, so the four
never disagree about how many cores there are or whether the CPU has VNNI.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# Flags that decide whether int8 beats float32 (x86: AVX2 / AVX-512 / VNNI / AMX; Arm: dot product).
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def read_cpuinfo(path: str | os.PathLike[str] = "/proc/cpuinfo") -> tuple[str, frozenset[str] | None]:
    """(CPU model name, its flags); flags are None where they cannot be read (no /proc/cpuinfo)."""
    model = platform.processor() or platform.machine()
    flags: frozenset[str] | None = None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model or "unknown", None
    named = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Hardware", "Model") and not named:
            model, named = value.strip(), True
        elif key in ("flags", "Features") and flags is None:
            flags = frozenset(value.split())
    return model or "unknown", flags


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str] | None:
    """This CPU's flags (cached: /proc/cpuinfo does not change while we run)."""
    return read_cpuinfo()[1]


def has_vnni(flags: frozenset[str] | None = None) -> bool | None:
    """True/False from the CPU flags (AVX-512 VNNI, AVX-VNNI, AMX int8); None where unknown."""
    flags = cpu_flags() if flags is None else flags
    return None if not flags else bool(flags & VNNI_FLAGS)


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
