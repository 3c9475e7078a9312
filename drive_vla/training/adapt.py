"""What trains inside the model: freezing submodules by name, LoRA on ``model.lm`` (peft), gradient checkpointing."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from drive_vla.training.config import LoraConfig


def freeze_modules(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """Turn off gradients of the named submodules (dotted names, e.g. "lm", "vision.backbone").

    Returns the frozen modules (the training module keeps them in eval mode so dropout and batch-norm
    statistics stay fixed too). Unknown names raise ValueError listing the top-level modules.
    """
    frozen = []
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            tops = [n for n, _ in model.named_children()]
            raise ValueError(f"freeze: got {name!r}, expected a submodule name such as {tops}") from None
        for p in module.parameters():
            p.requires_grad_(False)
        frozen.append(module)
    return frozen


def apply_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Wrap ``model.lm`` with peft LoRA adapters in place; the LM's own weights stop training.

    Only the adapter matrices of the LM are trainable afterwards, plus ``cfg.modules_to_save`` and,
    with ``cfg.train_new_tokens``, the embedding rows of the tokens the VLA added (``new_token_ids``);
    the other submodules keep their ``requires_grad``.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    lm = getattr(model, "lm", None)
    if not isinstance(lm, nn.Module):
        raise ValueError(f"lora.enabled: the model ({type(model).__name__}) has no `lm` submodule to adapt")
    linear_names = {n.rsplit(".", 1)[-1] for n, m in lm.named_modules() if isinstance(m, nn.Linear)}
    missing = [t for t in cfg.target_modules if t not in linear_names]
    if missing or not cfg.target_modules:
        raise ValueError(
            f"lora.target_modules: got {list(cfg.target_modules)}, expected linear layers of the LM among "
            f"{sorted(linear_names)}"
        )
    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        modules_to_save=list(cfg.modules_to_save) or None,
        trainable_token_indices=new_token_ids(model) if cfg.train_new_tokens else None,
        bias="none",
    )
    model.lm = get_peft_model(lm, peft_cfg)
    return model


def new_token_ids(model: nn.Module) -> list[int] | None:
    """LM ids the VLA added to the LM: its special tokens and the waypoint/control ranges (None if unknown)."""
    layout = getattr(model, "layout", None)
    if layout is None:
        return None
    ids = set(int(i) for i in layout.special.values()) | set(range(int(layout.action_offset), int(layout.vocab_size)))
    return sorted(ids)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA adapters back into ``model.lm`` (in place) so the model has its plain architecture again."""
    from peft import PeftModel

    if isinstance(getattr(model, "lm", None), PeftModel):
        model.lm = model.lm.merge_and_unload()
    return model


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute the LM's activations during backward (Hugging Face's non-reentrant checkpointing)."""
    lm = getattr(model, "lm", None)
    if lm is None or not hasattr(lm, "gradient_checkpointing_enable"):
        raise ValueError(
            f"trainer.gradient_checkpointing: the model ({type(model).__name__}) has no Hugging Face `lm` to checkpoint"
        )
    lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that receive gradients."""
    return [n for n, p in model.named_parameters() if p.requires_grad]
