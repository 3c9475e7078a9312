"""A lean inference forward of a Llama-family decoder (Llama, SmolLM2, Qwen2) over a preallocated KV cache.

Decoding a plan feeds one to a few tokens per LM pass. For a small LM the arithmetic of such a pass is
tiny and the cost is the framework around it: Hugging Face's per-layer module calls, the mask builders and
a ``DynamicCache`` that concatenates (reallocates) its keys and values every step. This forward runs the
same weights and the same operations (RMSNorm in float32, rotary embedding from the model's own rotary
module, grouped-query scaled-dot-product attention, SiLU-gated MLP) over a cache whose slots are written in
place, with one boolean mask per pass. It is used by ``generate.plan_batch`` in inference when
``ModelConfig.lean_decoding`` is on and ``supports`` accepts the LM; anything else (another architecture,
a non-default rope, sliding windows) goes through Hugging Face's forward. Tests check that both give the
same hidden states and plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_TYPES = ("llama", "qwen2")
SDPA_GQA = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)  # enable_gqa exists


def supports(lm: Any) -> bool:
    """True when ``lm`` (a Hugging Face causal LM, possibly wrapped) is a decoder this forward reproduces."""
    cfg = getattr(lm, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "use_sliding_window", False):
        return False
    if getattr(cfg, "mlp_bias", False) or getattr(cfg, "pretraining_tp", 1) not in (1, None):
        return False
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return False
    decoder = lm.get_decoder()
    return all(hasattr(decoder, name) for name in ("layers", "norm", "rotary_emb")) and weights_whole(lm)


def weights_whole(lm: Any) -> bool:
    """False when the first layer's query weight does not have its full shape (a sharded FSDP model, whose
    weights exist whole only inside each layer's own forward): then Hugging Face's forward must run."""
    cfg = lm.config
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    q = lm.get_decoder().layers[0].self_attn.q_proj
    weight = getattr(q, "weight", None)
    if weight is None or callable(weight):  # INT8 dynamic layers keep packed weights: read through the module
        return True
    return tuple(weight.shape) == (heads * head_dim, int(cfg.hidden_size))


@dataclass
class LeanCache:
    """Keys and values per layer, each (B, KV heads, capacity, head dim); slots ``[0, length)`` are filled."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0

    @property
    def capacity(self) -> int:
        return int(self.keys[0].shape[2])

    def get_seq_length(self) -> int:
        return self.length

    def expanded(self, batch: int, capacity: int) -> LeanCache:
        """A copy with ``batch`` rows (from a batch-1 cache) and room for ``capacity`` slots."""
        cap = max(capacity, self.length)

        def grow(t: torch.Tensor) -> torch.Tensor:
            out = t.new_zeros((batch, t.shape[1], cap, t.shape[3]))
            out[:, :, : self.length] = t[:, :, : self.length]
            return out

        return LeanCache([grow(k) for k in self.keys], [grow(v) for v in self.values], self.length)

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more slots (doubling, so a long explanation reallocates rarely)."""
        need = self.length + extra
        if need <= self.capacity:
            return
        cap = max(need, 2 * self.capacity)
        for store in (self.keys, self.values):
            for i, t in enumerate(store):
                out = t.new_zeros((t.shape[0], t.shape[1], cap, t.shape[3]))
                out[:, :, : self.length] = t[:, :, : self.length]
                store[i] = out


@dataclass
class LeanOutput:
    last_hidden_state: torch.Tensor  # (B, S, H), after the final norm
    past_key_values: LeanCache


def _linear(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A plain ``nn.Linear`` as one functional call; anything else (INT8, LoRA wrappers) through its module."""
    if type(module) is nn.Linear:
        return F.linear(x, module.weight, module.bias)
    return module(x)


def _rms_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Llama's RMSNorm: normalised in float32, cast back, then scaled by the weight."""
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6))
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return module.weight * h.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def lean_forward(
    lm: Any, embeds: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: LeanCache | None
) -> LeanOutput:
    """One inference pass: ``embeds`` (B, S, H) at positions ``pos`` (B, S), appended to ``cache``.

    ``mask`` (B, cache length + S) marks the slots that hold real tokens (1) and padding (0), as Hugging
    Face's 2D attention mask: a token attends to the real slots up to its own. Without a cache a new one is
    allocated with room for 64 more tokens.
    """
    decoder = lm.get_decoder()
    cfg = lm.config
    b, s, _ = embeds.shape
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    layers = decoder.layers[: int(cfg.num_hidden_layers)]
    if cache is None:
        shape = (b, kv_heads, s + 64, head_dim)
        cache = LeanCache([embeds.new_zeros(shape) for _ in layers], [embeds.new_zeros(shape) for _ in layers], 0)
    cache.reserve(s)
    start, end = cache.length, cache.length + s
    if mask.shape != (b, end):
        raise ValueError(f"mask: got shape {tuple(mask.shape)}, expected ({b}, {end}) (cache length + new tokens)")
    attn_mask = None  # None: every earlier slot is real and a single new token sees them all
    if s > 1 or not bool(mask.all()):
        causal = torch.ones((s, end), dtype=torch.bool, device=embeds.device).tril(diagonal=start)
        attn_mask = (causal[None] & mask.bool()[:, None, :])[:, None]  # (B, 1, S, end)
        attn_mask[..., start:] |= torch.eye(s, dtype=torch.bool, device=embeds.device)  # padding sees itself
    cos, sin = decoder.rotary_emb(embeds, pos)  # (B, S, head dim) each
    cos, sin = cos[:, None], sin[:, None]
    scale = head_dim**-0.5
    h = embeds
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        x = _rms_norm(layer.input_layernorm, h)
        q = _linear(attn.q_proj, x).view(b, s, heads, head_dim).transpose(1, 2)
        k = _linear(attn.k_proj, x).view(b, s, kv_heads, head_dim).transpose(1, 2)
        v = _linear(attn.v_proj, x).view(b, s, kv_heads, head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        keys, values = cache.keys[i][:, :, :end], cache.values[i][:, :, :end]
        gqa = {}
        if kv_heads != heads and SDPA_GQA:  # grouped-query attention inside SDPA (torch >= 2.5)
            gqa = {"enable_gqa": True}
        elif kv_heads != heads:  # older torch: expand the key and value heads
            keys = keys.repeat_interleave(heads // kv_heads, dim=1)
            values = values.repeat_interleave(heads // kv_heads, dim=1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask, scale=scale, **gqa)
        h = h + _linear(attn.o_proj, out.transpose(1, 2).reshape(b, s, heads * head_dim))
        mlp = layer.mlp
        x = _rms_norm(layer.post_attention_layernorm, h)
        h = h + _linear(mlp.down_proj, F.silu(_linear(mlp.gate_proj, x)) * _linear(mlp.up_proj, x))
    cache.length = end
    return LeanOutput(_rms_norm(decoder.norm, h), cache)
