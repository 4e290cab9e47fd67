"""int8 linear layers that keep an LLM's vectors: per-channel weights, per-token activations.

torch's dynamic quantization scales a whole batch of activations by one number, so the few huge
activation channels LLMs are known for (Dettmers et al., 2022, "LLM.int8()"; Sun et al., 2024,
"Massive Activations") flatten every other value of the batch to a handful of levels: the built-in
encoder's vectors fell to cosine 0.76 against fp32. Here each token's activations get their own
scale (an outlier then costs precision in its own row only), each output channel of the weights its
own, and a linear layer runs as one int8 x int8 -> int32 matmul (`torch._int_mm`, VNNI / AMX on
CPU) rescaled by the outer product of the two scales. `smooth` (SmoothQuant, Xiao et al., 2023)
optionally moves part of each input channel's range from the activations into the weights, using
activation maxima seen on calibration texts. benchmarks/cpu_precision.py measures both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ragkit.encoders.precision import ModuleT

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ragkit.encoders.encoder import Encoder


class Int8Linear(torch.nn.Module):
    """A frozen `nn.Linear` as int8 weights (per output channel) with int8 activations per token."""

    weight_t: torch.Tensor  # buffers, registered in __init__
    weight_scale: torch.Tensor
    smoothing: torch.Tensor | None
    bias: torch.Tensor | None

    def __init__(self, linear: torch.nn.Linear, smoothing: torch.Tensor | None = None) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        if smoothing is not None:  # x / s times (W * s): the same product, an easier x
            weight = weight * smoothing[None, :]
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_t", quantized.t().contiguous())  # (in, out): _int_mm's layout
        self.register_buffer("weight_scale", scale)
        self.register_buffer("smoothing", smoothing)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x quantized per token, one int8 matmul, rescaled by both scales (bias added in fp32)."""
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        if self.smoothing is not None:
            rows = rows / self.smoothing
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        quantized = torch.round(rows / scale).clamp(-127, 127).to(torch.int8)
        out = torch._int_mm(quantized, self.weight_t).float() * scale * self.weight_scale
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)


def quantize_int8(
    model: ModuleT, activation_max: dict[str, torch.Tensor] | None = None, alpha: float = 0.5
) -> ModuleT:
    """Every linear layer of `model` replaced by an `Int8Linear` (in place; inference only).

    `activation_max` (layer name -> per-input-channel max |x| on calibration texts, from
    `activation_maxima`) turns on SmoothQuant with migration strength `alpha`.
    """
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                full = f"{name}.{child_name}" if name else child_name
                smoothing = None
                if activation_max is not None and full in activation_max:
                    smoothing = _smoothing(activation_max[full], child.weight.detach().float(), alpha)
                setattr(module, child_name, Int8Linear(child, smoothing))
    return model


def activation_maxima(model: torch.nn.Module, run) -> dict[str, torch.Tensor]:
    """Per input channel, the largest |activation| each linear layer of `model` sees while `run()`
    runs (encoding some calibration texts): what `quantize_int8` smooths with."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []

    def record(name: str):
        def hook(module, inputs, output) -> None:
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0)
            seen[name] = torch.maximum(seen[name], x) if name in seen else x

        return hook

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _smoothing(activation_max: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's s_j = max|x_j|^alpha / max|W_j|^(1 - alpha), per input channel j."""
    weight_max = weight.abs().amax(dim=0).clamp(min=1e-5)
    return (activation_max.clamp(min=1e-5) ** alpha / weight_max ** (1 - alpha)).clamp(min=1e-5)


# Texts to measure activation ranges on (`Encoder.load(precision="int8")`): varied in subject,
# register and length, written for ragkit; the ranges are the model's more than the texts'.
CALIBRATION_TEXTS = (
    "How do plants turn sunlight into chemical energy?",
    "Photosynthesis takes place in the chloroplasts, where chlorophyll absorbs light and drives the "
    "conversion of carbon dioxide and water into glucose, releasing oxygen as a by-product.",
    "what is the boiling point of water at high altitude",
    "The French Revolution began in 1789 with the storming of the Bastille and ended a decade later "
    "with the rise of Napoleon Bonaparte, reshaping politics across Europe.",
    "Given a scientific claim, retrieve documents that support or refute the claim: vitamin D "
    "supplements reduce the risk of fractures in older adults.",
    "def binary_search(items, target):\n    low, high = 0, len(items) - 1\n    while low <= high:\n"
    "        middle = (low + high) // 2",
    "Volcanoes form where magma rises through the crust; most lie along the boundaries of tectonic "
    "plates, such as the Pacific Ring of Fire.",
    "Shipping: orders over 50 EUR ship free within 3-5 business days. Returns accepted for 30 days.",
    "Patients randomised to the intervention arm (n = 214) showed a 12% reduction in systolic blood "
    "pressure at 24 weeks compared with placebo (p < 0.01).",
    "best hiking trails near lake tahoe for beginners",
    "Honey bees communicate the direction and distance of flowers through the waggle dance, a "
    "figure-eight movement performed on the comb.",
    "The turbulent boundary layer on a flat plate thickens downstream as the Reynolds number grows.",
    "Qu'est-ce que la photosynthèse ? Die Photosynthese ist ein Stoffwechselprozess der Pflanzen.",
    "Black holes are regions of spacetime where gravity is so strong that nothing, not even light, "
    "can escape once it has crossed the event horizon.",
    "Q3 revenue rose 8% year over year to $4.2 billion, driven by cloud services and advertising.",
    "A bicycle's gears let the rider keep a comfortable cadence on climbs and descents alike.",
)


def int8_model(encoder: Encoder) -> PreTrainedModel:
    """`encoder`'s model with int8 linear layers, SmoothQuant-scaled by the activations the fp32
    `encoder` sees on `CALIBRATION_TEXTS` (measured on the model as it encodes: bidirectional,
    pooled): `Encoder(precision="int8")` quantizes its model with it."""
    if encoder.precision != "fp32":
        raise ValueError(
            f"int8 calibration measures an fp32 encoder; this one computes in {encoder.precision}"
        )
    texts = list(CALIBRATION_TEXTS)
    maxima = activation_maxima(encoder.model, lambda: encoder.encode(texts, show_progress=False))
    return quantize_int8(encoder.model, maxima)
