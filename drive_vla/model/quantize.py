"""Post-training CPU INT8: PyTorch's dynamic quantization of the linear layers (weights int8, activations
quantized on the fly). The vision backbone's convolutions, the norms, the embeddings and the fused output
projection of ``nn.MultiheadAttention`` (which PyTorch leaves out) stay float32."""

from __future__ import annotations

import warnings

import torch
from torch import nn

QUANTIZE_MODES: tuple[str, ...] = ("none", "int8")


def check_quantize(mode: str, device: str | torch.device = "cpu", flag: str = "quantize") -> None:
    """Raise ValueError naming ``flag`` unless ``mode`` is known and runs on ``device`` (int8: CPU only)."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"{flag}: got {mode!r}, expected one of {list(QUANTIZE_MODES)}")
    if mode == "int8" and torch.device(device).type != "cpu":
        raise ValueError(f"{flag}: got 'int8' with device {str(device)!r}; dynamic INT8 runs on 'cpu' only")


def quantize_model(model: nn.Module, mode: str) -> nn.Module:
    """``model`` with every ``nn.Linear`` replaced by its dynamically quantized INT8 form (in place, eval
    mode); ``mode="none"`` returns it unchanged. float32 models only."""
    check_quantize(mode)
    if mode == "none":
        return model
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(f"quantize: got parameters of dtype {sorted(map(str, dtypes))}, expected float32 for int8")
    model.eval()
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice names torchao, not installed here
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)


def count_quantized(model: nn.Module) -> int:
    """Number of dynamically quantized linear layers in ``model``."""
    return sum(1 for m in model.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__)
