"""How an encoder's matmuls run at inference: fp32, bf16 or int8.

On CPU, "bf16" is autocast (bf16 matmuls on AVX-512 bf16 / AMX, fp32 elsewhere; `Encoder.load`
casts the linear weights to bf16 and packs them for oneDNN once, `BF16Linear`, instead of on every
call) and "int8" runs the linear layers as int8 matmuls (ragkit/encoders/int8.py: per-channel
weights, per-token activations, SmoothQuant scaling measured on built-in texts). On a GPU, "bf16"
and "fp32" are the weights' dtype; int8 is CPU only.
`benchmarks/cpu_precision.py` measures speed, cosine to fp32 and nDCG@10 for each. The default is
bf16 wherever the hardware computes it (a CUDA GPU with bf16, a CPU with AVX-512 bf16 or AMX): there
it encodes about twice as fast as fp32 for at most 0.01 nDCG@10 on every folder measured. Where bf16
would be emulated (slower than fp32) the default stays fp32.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Literal, TypeGuard, TypeVar

import torch

from ragkit.errors import RagkitError

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
FALLBACK: Precision = "fp32"  # where bf16 is emulated
PRECISION_ENV = "RAGKIT_PRECISION"
CPUINFO = Path("/proc/cpuinfo")


def resolve_precision(precision: str | None, device: torch.device) -> Precision:
    """`precision`, or the default for `device`; a bad value is a one-line error. Decided once, when
    an encoder loads (`Encoder.load`); everything after reads `encoder.precision`."""
    if precision is None:
        return default_precision(device)
    return check_precision(precision, device)


def is_precision(value: object) -> TypeGuard[Precision]:
    """Whether `value` names a precision ragkit computes in."""
    return value in PRECISIONS


def check_precision(precision: str, device: torch.device) -> Precision:
    """`precision` if `device` can run it, else a one-line error."""
    if not is_precision(precision):
        raise RagkitError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device.type != "cpu":
        raise RagkitError("precision int8 is for CPU encoding: on a GPU use bf16 (the default) or fp32")
    return precision


def default_precision(device: torch.device) -> Precision:
    """`$RAGKIT_PRECISION` if set (one setting for every command and process), else bf16 where
    `device` computes it natively, else fp32 (see the module docstring)."""
    if chosen := os.environ.get(PRECISION_ENV):
        if not is_precision(chosen):
            raise RagkitError(
                f"{PRECISION_ENV}={chosen!r} is not a precision: use one of {', '.join(PRECISIONS)}"
            )
        if chosen == "int8" and device.type != "cpu":
            return FALLBACK if not native_bf16(device) else "bf16"
        return chosen
    return "bf16" if native_bf16(device) else FALLBACK


def matching_precision(recorded: str, device: torch.device) -> Precision | None:
    """The precision for an index's queries: the one its documents were encoded in (`recorded`), so
    both sides are encoded alike, unless `device` cannot run it natively (bf16 emulated, int8 on a
    GPU); None (the device's default) then, and for indexes that recorded none."""
    if recorded == "bf16" and not native_bf16(device):
        return None
    if recorded == "int8" and device.type != "cpu":
        return None
    return recorded if is_precision(recorded) else None


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matmuls in hardware: a CUDA GPU that supports bf16, or a CPU
    with AVX-512 bf16 or AMX (elsewhere CPU bf16 is emulated, and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with CPUINFO.open() as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: no way to tell, so no
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def weight_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """The dtype to load weights in: bf16 weights on a GPU only (CPU bf16 is autocast over fp32)."""
    return torch.bfloat16 if precision == "bf16" and device.type != "cpu" else torch.float32


class BF16Linear(torch.nn.Module):
    """A frozen `nn.Linear` for CPU inference in bf16, its weight packed once for oneDNN.

    Under CPU autocast every linear layer casts its fp32 weight to bf16 on every call, and the bf16
    matmul then reorders it into oneDNN's blocked layout on every call too: for one short query
    those copies cost as much as the matmul. Here both happen once, at load. The weight holds the
    same bf16 values autocast would make and the layer returns bf16 as autocast does, so the vectors
    match autocast's to float rounding (benchmarks/results/query_latency.md: one query 1.33x
    faster than with plain bf16 weights). Where oneDNN has no bf16 kernel the weight is kept plain
    (bf16) instead.
    """

    bias: torch.Tensor | None  # a buffer, registered in __init__

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._set_weight(linear.weight.detach().to(torch.bfloat16))
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def _set_weight(self, weight: torch.Tensor) -> None:
        self.packed = _onednn_bf16()
        if self.packed:
            weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
        self.weight = weight  # not a parameter: inference only, never saved (see `Encoder.save`)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x in bf16 times the packed weight; the output stays bf16, as under autocast."""
        x = x.to(torch.bfloat16)
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return torch.nn.functional.linear(x, self.weight, self.bias)

    def __getstate__(self) -> dict:  # a packed tensor cannot be pickled (worker processes)
        state = self.__dict__.copy()
        state["weight"] = self.weight.to_dense() if self.packed else self.weight
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._set_weight(state["weight"])

    def extra_repr(self) -> str:
        """Shown by `print(model)`."""
        return f"in_features={self.in_features}, out_features={self.out_features}, packed={self.packed}"


def bf16_linear_weights(model: ModuleT) -> ModuleT:
    """Every linear layer replaced by a `BF16Linear` (in place); embeddings and norms stay fp32.
    For encoders loaded to encode on CPU (`Encoder.load`), not for training."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, BF16Linear(child))
    return model


def has_bf16_linears(model: torch.nn.Module) -> bool:
    """Whether `model` holds inference-only `BF16Linear` layers (it cannot be saved then)."""
    return any(isinstance(m, BF16Linear) for m in model.modules())


def _onednn_bf16() -> bool:
    """Whether this torch build has oneDNN's bf16 linear kernel (x86 with AVX-512 or AMX)."""
    try:
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return False


def compute_context(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """What `encode` runs under: bf16 autocast on CPU for "bf16", nothing otherwise."""
    if precision == "bf16" and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
