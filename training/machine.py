"""What machine a figure was measured on: speed figures are only comparable on the same one."""
from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def describe_machine() -> str:
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in cpu_flags()]
    return (f"{os.cpu_count()} cores, {cpu_name()}{' (' + ', '.join(bf16) + ')' if bf16 else ''}, "
            f"Python {platform.python_version()}")
