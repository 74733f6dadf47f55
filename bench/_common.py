"""Helpers the benchmark scripts share: naming the machine in a record, and keeping records small."""
import os, platform
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


def onednn_bf16() -> bool:
    "Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX; honours ONEDNN_MAX_CPU_ISA)"
    try: return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError): return False


# Variables that change which kernels run; they emulate a smaller CPU on a bigger one:
# ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
KERNEL_ENV = ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'MKL_ENABLE_INSTRUCTIONS',
              'OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT',
              'TORCHINDUCTOR_CACHE_DIR')


def cpu_caps() -> dict:
    "What the CPU offers the kernels, for every record: name, PyTorch's dispatch level, ISA flags, native bf16"
    flags = cpu_flags()
    cap, bf16 = torch.backends.cpu.get_cpu_capability(), onednn_bf16()
    env = {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}
    kind = f"{cap}, {'with' if bf16 else 'no'} native bf16"
    if any(k in env for k in KERNEL_ENV[:3]): kind += ' (emulated: see env)'
    return {'name': cpu_name(), 'kind': kind, 'capability': cap, 'onednn_bf16': bf16,
            'flags': sorted(f for f in flags if f in ('fma', 'avx', 'avx2')
                            or f.startswith(('avx512', 'amx')) or 'bf16' in f),
            'avx2': 'avx2' in flags, 'avx512': 'avx512f' in flags,
            'amx': 'amx_tile' in flags,
            'bf16_isa': bool(flags & {'avx512_bf16', 'amx_bf16'}), 'env': env}
