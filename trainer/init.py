"""How the word table starts: `lexical` (the default) or `random`.

A lexical start gives every word a random unit direction scaled by its inverse document frequency. In 256
dimensions random directions are nearly orthogonal, so before any training the mean-of-words cosine already
behaves like an IDF-weighted bag-of-words match: a query finds the pins that share its rare words. Training then
moves the words that engagement says belong together, instead of having to rediscover that a word matches
itself. Measured on real product search (docs/training.md): the lexical start alone scores close to BM25, while a
random start trained on a few thousand pairs scored a third of it, because most words of a real corpus appear in
too few pairs to be learned.

IDF is computed over document texts (the pins: pair positives and the corpus when one is given), smoothed as
log((N + 1) / (df + 0.5)); a word that occurs in no document (a query-only word) gets the largest value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
from tokenizers import Tokenizer

from pintext.text import WordIds
from pintext.trainer.tokenizer import UNK_ID

INITS = ("lexical", "random")
RANDOM_INIT_STD = 0.1


def document_frequencies(tokenizer: Tokenizer, documents: Iterable[str]) -> tuple[np.ndarray, int]:
    """(document frequency per vocabulary id, number of documents)."""
    word_ids = WordIds(tokenizer, UNK_ID)
    counts: Counter[int] = Counter()
    total = 0
    batch: list[str] = []

    def flush() -> None:
        for ids in word_ids(batch):
            counts.update(set(ids))
        batch.clear()

    for text in documents:
        batch.append(text)
        total += 1
        if len(batch) >= 4096:
            flush()
    flush()
    frequencies = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    for word_id, count in counts.items():
        frequencies[word_id] = count
    return frequencies, total


def idf(frequencies: np.ndarray, documents: int) -> np.ndarray:
    """Smoothed inverse document frequency, log((N + 1) / (df + 0.5)), never below a small positive floor."""
    values = np.log((documents + 1.0) / (frequencies + 0.5))
    return np.maximum(values, 0.05)


def rare_word_idf(documents: int) -> float:
    """The IDF of a word seen in one document: the weight an unseen (hashed) word gets at serving time."""
    return float(max(math.log((documents + 1.0) / 1.5), 0.05))


def lexical_table(tokenizer: Tokenizer, documents: Iterable[str], dim: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(word table [vocab, dim] float32, number of documents): unit random directions times IDF; UNK row zero."""
    frequencies, total = document_frequencies(tokenizer, documents)
    return table_from_idf(idf(frequencies, max(total, 1)), dim, seed), total


def table_from_idf(weights: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """Unit random directions [len(weights), dim] times `weights` (the IDF per word); UNK row zero."""
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((len(weights), dim)).astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True).clip(min=1e-12)
    table *= np.asarray(weights, dtype=np.float32)[:, None]
    table[UNK_ID] = 0.0
    return table


def random_table(vocab_size: int, dim: int, seed: int = 0) -> np.ndarray:
    """Small Gaussian rows (the original start); UNK row zero."""
    table = np.random.default_rng(seed).standard_normal((vocab_size, dim)).astype(np.float32) * RANDOM_INIT_STD
    table[UNK_ID] = 0.0
    return table
