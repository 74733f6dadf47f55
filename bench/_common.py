"""Helpers the benchmark scripts share: naming the machine in a record, and keeping records small."""
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    "The CPU's model name from /proc/cpuinfo, else what `platform` knows"
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    "'GPU <name>' or 'CPU <model name>, N torch threads', for a record's `machine` field"
    if device.type == 'cuda': return f"GPU {torch.cuda.get_device_name(device)}"
    n = torch.get_num_threads()
    return f"CPU {cpu_name()}, {n} torch thread{'s' if n != 1 else ''}"


def rounded(o, digits=5):
    "Floats to `digits` significant digits, so the committed JSON stays small"
    if isinstance(o, float): return float(f'{o:.{digits}g}')
    if isinstance(o, dict): return {k: rounded(v, digits) for k, v in o.items()}
    if isinstance(o, list): return [rounded(v, digits) for v in o]
    return o


def cpu_flags() -> set[str]:
    "The CPU's feature flags from /proc/cpuinfo (empty where there is none)"
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('flags'): return set(line.split(':', 1)[1].split())
    except OSError: pass
    return set()


def cpu_caps() -> dict:
    "The CPU's name and the vector/matrix units torch can use, for a record's `env`"
    flags = cpu_flags()
    caps = {'name': cpu_name(), 'torch_capability': torch.backends.cpu.get_cpu_capability()}
    for f in ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_bf16', 'amx_int8'):
        caps[f] = f in flags if flags else None
    return caps
