"""Vision tokenizer: six uint8 camera images -> a few visual tokens in the LM's embedding space.

A timm backbone is shared by the cameras; its feature map gets 2D sine position and learned camera
embeddings; learned scene queries cross-attend to all cameras' features (Q-Former style) and, when
``memory_frames > 0``, to the visual tokens of the last frames (an ORION-style FIFO memory that lives
between calls in eval mode and is cleared by ``reset_memory``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drive_vla.data.images import resize_area
from drive_vla.model.config import VisionConfig
from drive_vla.types import CAMERA_NAMES


def _drop_stages_after_feature(model: nn.Module) -> None:
    """Cut the blocks after the requested feature map from MobileNet-style ``features_only`` models.

    timm's MobileNetV3/LCNet feature extractors run every block even when an earlier stage is asked for
    (``feature_index=-2``); those blocks would cost time and hold parameters that never get gradients.
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or getattr(model, "feature_hooks", None) is not None:
        return
    parts = [name.split(".") for name in model.feature_info.module_name()]
    if parts and all(len(p) >= 2 and p[0] == "blocks" and p[1].isdigit() for p in parts):
        model.blocks = blocks[: max(int(p[1]) for p in parts) + 1]


def build_backbone(cfg: VisionConfig) -> nn.Module:
    """The vision tokenizer's backbone: ``timm_backbone`` of ``cfg.backbone`` at ``cfg.feature_index``."""
    return timm_backbone(cfg.backbone, cfg.feature_index, cfg.weights_path, field="vision")


def timm_backbone(name: str, feature_index: int, weights_path: str = "", field: str = "vision") -> nn.Module:
    """A timm ``features_only`` backbone that returns feature level ``feature_index`` (the blocks after it cut
    off), with random weights or weights from ``weights_path``; errors name ``<field>.backbone`` or
    ``<field>.weights_path``.

    Raises:
        ValueError: unknown backbone name (the message lists similar available names) or a bad
            weights file.
    """
    import timm

    if name not in timm.list_models():
        stem = "".join(ch for ch in name.split("_")[0] if ch.isalpha())[:6]
        similar = timm.list_models(f"*{stem}*")[:40] if stem else []
        examples = similar or timm.list_models("resnet*")[:20] + timm.list_models("lcnet*")
        raise ValueError(
            f"{field}.backbone: got {name!r}, expected a timm model name; available include {examples} "
            f"(timm.list_models() lists all {len(timm.list_models())})"
        )
    model = timm.create_model(name, pretrained=False, features_only=True, out_indices=(feature_index,))
    _drop_stages_after_feature(model)
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise ValueError(f"{field}.weights_path: got {str(path)!r}, expected an existing weights file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        missing, _ = model.load_state_dict(state, strict=False)
        if len(missing) == len(model.state_dict()):
            raise ValueError(f"{field}.weights_path: {path} holds no weights of {name!r}")
    return model


def sine_position_2d(h: int, w: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h*w, dim) fixed 2D sine/cosine position embedding (half the channels for y, half for x)."""
    quarter = dim // 4
    freq = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(1e4) / max(quarter, 1)))
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None] * freq  # (h, dim/4)
    xs = torch.arange(w, device=device, dtype=torch.float32)[:, None] * freq  # (w, dim/4)
    pe_y = torch.cat([ys.sin(), ys.cos()], dim=1)[:, None, :].expand(h, w, 2 * quarter)
    pe_x = torch.cat([xs.sin(), xs.cos()], dim=1)[None, :, :].expand(h, w, 2 * quarter)
    pe = torch.cat([pe_y, pe_x], dim=2).reshape(h * w, 4 * quarter)
    if pe.shape[1] < dim:
        pe = F.pad(pe, (0, dim - pe.shape[1]))
    return pe.to(dtype)


class ResamplerBlock(nn.Module):
    """Queries cross-attend to image (and memory) features, then self-attend, then an MLP (pre-norm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # queries (B, Q, D), context (B, K, D)
        kv = self.norm_kv(context)
        q = self.norm_q(queries)
        queries = queries + self.cross(q, kv, kv, need_weights=False)[0]
        q = self.norm_self(queries)
        queries = queries + self.self_attn(q, q, q, need_weights=False)[0]
        return queries + self.mlp(self.norm_mlp(queries))


class VisionTokenizer(nn.Module):
    """(B, N_cam, 3, H, W) uint8 RGB -> (B, num_queries, lm_hidden) visual tokens."""

    def __init__(self, cfg: VisionConfig, lm_hidden: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)
        if cfg.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        channels = self.backbone.feature_info.channels()[-1]
        data_cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        mean = data_cfg.get("mean", (0.485, 0.456, 0.406))
        std = data_cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)
        d = cfg.dim
        self.feature_proj = nn.Conv2d(channels, d, kernel_size=1)
        self.camera_embed = nn.Parameter(torch.randn(len(CAMERA_NAMES), d) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, d) * 0.02)
        if cfg.memory_frames > 0:  # age of a past frame's tokens (0 = the previous frame)
            self.memory_age_embed = nn.Parameter(torch.randn(cfg.memory_frames, d) * 0.02)
        self.blocks = nn.ModuleList(ResamplerBlock(d, cfg.resampler_heads) for _ in range(cfg.resampler_layers))
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, lm_hidden)
        self._memory: list[torch.Tensor] = []  # newest last, each (B, Q, D)

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_queries

    def reset_memory(self) -> None:
        """Forget the past frames (start of a new drive)."""
        self._memory = []

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, N_cam, 3, H, W) -> normalised float (B*N_cam, 3, h, w) at ``cfg.image_hw``.

        ``DrivingPolicy`` hands over images already at ``cfg.image_hw`` (``Batch.from_observations`` resizes
        them as uint8), so nothing is resized here. Other sizes (a training reader set to another size, a
        hand-built batch) get the same uint8 area resize on CPU, and an area (down) or bilinear (up)
        resize of floats on other devices; either way each image is resized once, before normalising.
        """
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images: got shape {tuple(images.shape)}, expected (B, N_cam, 3, H, W)")
        b, n = images.shape[:2]
        dtype, device = self.queries.dtype, self.queries.device
        x = images.reshape(b * n, *images.shape[2:])  # (B*N, 3, H, W) uint8
        h, w = (int(v) for v in self.cfg.image_hw)
        if tuple(x.shape[-2:]) != (h, w) and x.dtype == torch.uint8 and x.device.type == "cpu":
            hwc = x.permute(0, 2, 3, 1).numpy()  # (B*N, H, W, 3), a view
            x = torch.from_numpy(np.stack([resize_area(im, (w, h)) for im in hwc])).permute(0, 3, 1, 2)
        x = x.to(device=device, dtype=dtype)
        if tuple(x.shape[-2:]) != (h, w):
            shrink = x.shape[-2] >= h and x.shape[-1] >= w
            x = F.interpolate(x, size=(h, w), mode="area") if shrink else F.interpolate(x, size=(h, w), mode="bilinear")
        return (x - self.pixel_mean.to(dtype)) / self.pixel_std.to(dtype)

    def forward(
        self, images: torch.Tensor, memory: str = "off", return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Visual tokens of one frame.

        Args:
            images: (B, N_cam, 3, H, W) uint8 RGB in CAMERA_NAMES order; the first ``num_cameras`` are read.
            memory: "off" (single frame, as in training), "read" (attend to the stored past frames) or
                "update" (attend to them, then push this frame into the FIFO memory).
            return_features: also return the projected backbone feature maps (B, N_cam, dim, fh, fw), which
                training-only perception tasks read (``camera_aux``).

        Returns:
            (B, num_queries, lm_hidden) tokens (and the feature maps when asked).
        """
        images = images[:, : self.cfg.num_cameras]  # the cameras this model reads (CAMERA_NAMES order)
        b, n = images.shape[:2]
        x = self.preprocess(images)  # (B*N, 3, h, w)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feat = self.feature_proj(self.backbone(x)[-1])  # (B*N, D, fh, fw)
        _, d, fh, fw = feat.shape
        feature_maps = feat.view(b, n, d, fh, fw) if return_features else None
        feat = feat.flatten(2).transpose(1, 2)  # (B*N, fh*fw, D)
        feat = feat + sine_position_2d(fh, fw, d, feat.device, feat.dtype)
        feat = feat.view(b, n, fh * fw, d) + self.camera_embed[:n, None, :]
        context = feat.reshape(b, n * fh * fw, d)  # (B, N*fh*fw, D)
        if memory not in ("off", "read", "update"):
            raise ValueError(f"memory: got {memory!r}, expected 'off', 'read' or 'update'")
        memory_on = memory != "off" and self.cfg.memory_frames > 0
        if memory_on and self._memory and self._memory[0].shape[0] != b:
            self._memory = []  # a different batch is a different set of drives
        if memory_on and self._memory:
            ages = self.memory_age_embed[: len(self._memory)].flip(0)  # newest frame has age 0
            past = torch.cat([m + ages[i] for i, m in enumerate(self._memory)], dim=1)  # (B, T*Q, D)
            context = torch.cat([context, past], dim=1)
        q = self.queries.unsqueeze(0).expand(b, -1, -1)  # (B, Q, D)
        for block in self.blocks:
            q = block(q, context)
        if memory_on and memory == "update":
            self._memory = [*self._memory, q.detach()][-self.cfg.memory_frames :]
        tokens = self.out_proj(self.out_norm(q))  # (B, Q, H_lm)
        return (tokens, feature_maps) if return_features else tokens
