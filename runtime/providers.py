"""Which onnxruntime execution provider runs, and which flavor it runs.

onnxruntime's CUDA provider has no ai.onnx.ml kernels: a tree-flavor graph "on CUDA"
silently runs on the CPU. So CUDA always means the tensor flavor, and asking for CUDA
where there is none falls back to the CPU with one warning per process.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import onnxruntime as ort

from .errors import M7Error

_ORT_NAMES = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
#: onnxruntime's own provider names, accepted as well
_ALIASES = {"cpuexecutionprovider": "cpu", "cudaexecutionprovider": "cuda"}
_warned = False


@dataclass(frozen=True)
class Placement:
    provider: str  # "cpu" | "cuda": what runs
    flavor: str  # "tree" | "tensor"
    ort_providers: tuple[str, ...]


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def place(provider: str, *, flavors: tuple[str, ...], flavor: str | None, cpu_flavor: str = "tree") -> Placement:
    """Resolve ``provider`` ("cpu", "cuda", "auto", or onnxruntime's "CPUExecutionProvider" /
    "CUDAExecutionProvider") and an optional forced ``flavor``."""
    if isinstance(provider, str):
        provider = _ALIASES.get(provider.lower(), provider)
    if provider not in ("cpu", "cuda", "auto"):
        raise M7Error(
            f"provider must be 'cpu', 'cuda' or 'auto' (or onnxruntime's CPUExecutionProvider, CUDAExecutionProvider), "
            f"got {provider!r}"
        )
    if flavor is not None and flavor not in flavors:
        raise M7Error(f"flavor {flavor!r} is not in this artifact; it has {sorted(flavors)}")
    wants_cuda = provider == "cuda" or (provider == "auto" and cuda_available())
    if wants_cuda and cuda_available() and "tensor" in flavors and flavor in (None, "tensor"):
        return Placement("cuda", "tensor", tuple(_ORT_NAMES["cuda"]))
    if provider == "cuda":
        why = (
            "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu on a machine with a GPU)"
            if not cuda_available()
            else "the artifact has no tensor flavor (re-convert with --flavor all)"
            if "tensor" not in flavors
            else f"flavor={flavor!r} has no CUDA kernels"
        )
        _warn_once(f"provider='cuda' requested but {why}; running on the CPU instead")
    chosen = flavor or (cpu_flavor if cpu_flavor in flavors else sorted(flavors)[-1])
    return Placement("cpu", chosen, tuple(_ORT_NAMES["cpu"]))
