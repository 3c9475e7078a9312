"""Text tokenizers for LMs without their own: the plain byte-level one and a byte-level BPE fitted to label texts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BYTE_TOKENIZER_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
TEXT_TOKENIZERS: tuple[str, ...] = ("byte", "corpus")
MIN_TEXT_VOCAB = 256 + len(BYTE_TOKENIZER_SPECIALS)  # every byte symbol and the specials


def _wrap(core: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def byte_level_tokenizer() -> Any:
    """A small offline byte-level text tokenizer (256 byte symbols + pad/bos/eos/unk, no merges).

    Used by LMs with random weights that have no tokenizer files; it can spell any UTF-8 text and is
    saved with the policy like any Hugging Face tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(BYTE_TOKENIZER_SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return _wrap(core)


def corpus_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE text tokenizer fitted to ``texts`` (e.g. every instruction, explanation and QA pair).

    Words the texts repeat (templated label sentences) become single tokens, so a random-weight LM predicts
    a few word tokens per sentence instead of one token per byte. All 256 byte symbols stay in the
    vocabulary, so any UTF-8 text remains encodable. The same texts give the same tokenizer.

    Args:
        texts: the corpus (order does not matter; duplicates weigh the merges as usual).
        vocab_size: at most this many tokens, specials and the 256 byte symbols included (fewer when the
            corpus has no more pairs to merge).

    Raises:
        ValueError: ``vocab_size`` leaves no room for merges (< 256 + specials).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_TEXT_VOCAB:
        raise ValueError(
            f"lm.text_vocab_size: got {vocab_size}, expected >= {MIN_TEXT_VOCAB} (byte symbols and specials)"
        )
    # Sorted input makes the fit independent of the caller's order (the trainer breaks count ties by pair).
    corpus = sorted(t for t in texts if t)
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(BYTE_TOKENIZER_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    return _wrap(core)


def build_text_tokenizer(kind: str, fit_texts: Iterable[str] | None = None, vocab_size: int = 1024) -> Any:
    """The text tokenizer ``lm.text_tokenizer`` names: "byte" or "corpus" (fitted to ``fit_texts``).

    Raises:
        ValueError: unknown ``kind``, or "corpus" without ``fit_texts``.
    """
    if kind == "byte":
        return byte_level_tokenizer()
    if kind != "corpus":
        raise ValueError(f"lm.text_tokenizer: got {kind!r}, expected one of {list(TEXT_TOKENIZERS)}")
    if fit_texts is None:
        raise ValueError(
            "lm.text_tokenizer: 'corpus' needs fit_texts (the training split's instructions, explanations and QA; "
            "training passes them), or a saved policy that already holds the fitted tokenizer; "
            "set lm.text_tokenizer=byte to build without data"
        )
    return corpus_tokenizer(fit_texts, vocab_size)
