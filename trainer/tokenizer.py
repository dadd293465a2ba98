"""The word-level tokenizer PinText trains and serves with.

A `tokenizers` WordLevel model behind the normalizer and word split of `pintext.text`, so that
`Tokenizer.encode(text).tokens` are exactly `pintext.text.words(text)` with unknown words replaced by
UNK_TOKEN. The model ignores UNK_TOKEN when averaging (it is the EmbeddingBag padding index and the
Encoder drops it), so an out-of-vocabulary word neither counts nor dilutes the mean.
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, models, trainers

from pintext.text import build_normalizer, build_pre_tokenizer

UNK_TOKEN = "[UNK]"
UNK_ID = 0  # first special token of the trainer, so always row 0 of the table


def empty_word_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    """A WordLevel tokenizer with PinText's normalizer and word split over `vocab` (default: UNK only)."""
    tokenizer = Tokenizer(models.WordLevel(vocab or {UNK_TOKEN: UNK_ID}, unk_token=UNK_TOKEN))
    tokenizer.normalizer = build_normalizer()
    tokenizer.pre_tokenizer = build_pre_tokenizer()
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def train_word_tokenizer(texts: Iterable[str], *, min_count: int = 2, max_size: int = 100_000) -> Tokenizer:
    """Build the vocabulary from `texts`: words seen at least `min_count` times, the `max_size` most frequent.

    `max_size` counts the unknown token too. Ties in frequency are broken by the `tokenizers` trainer.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if max_size < 2:
        raise ValueError(f"max_size must be >= 2 (the unknown token and one word), got {max_size}")
    tokenizer = empty_word_tokenizer()
    trainer = trainers.WordLevelTrainer(
        vocab_size=max_size, min_frequency=min_count, special_tokens=[UNK_TOKEN], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if tokenizer.token_to_id(UNK_TOKEN) != UNK_ID:
        raise RuntimeError(f"{UNK_TOKEN} did not land at id {UNK_ID}")
    return tokenizer
