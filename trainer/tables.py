"""What the loop trains: the word table, and (by default) a sub-word n-gram table beside it, with lazy Adam.

A word's vector is its row plus its weighted n-gram mean (`pintext.subwords` has the formula); a text's vector is
the mean of its words' vectors. A batch is computed in two levels, so that only what the batch uses is touched:

1. the batch's distinct words U: each word's vector is its row plus `mix[U] @ ngrams` (`mix`: the fixed sparse
   [vocab, buckets] matrix of n-gram weights; scipy's product reads only the n-gram rows U uses);
2. each text's vector: the mean over its words' positions in U (a sparse [texts, U] matrix of 1 / known words).

Both levels are linear, so they run in numpy and only the texts' vectors are a torch leaf: the loss differentiates
them, and `update` carries their gradient back by the transposed products (to U's rows, then to the n-gram rows R
that U uses), without autograd over the tables. `LazyAdam` then updates just those rows (a row nobody used keeps
its value and moments, as `torch.optim.SparseAdam` does), with torch's fused Adam kernel on the gathered rows.
Measured on the Home Depot pairs (docs/results/trainer-speed/): the n-gram rows' Adam update is most of a step;
the torch `sparse.mm` forward and backward and the elementwise Adam ops this replaced cost about as much again.
Why not one `EmbeddingBag` over word and n-gram rows with `SparseAdam`: a batch of 256 pairs sums ~60k (row,
weight) entries, and coalescing that sparse gradient cost 4x the whole word-only step; grouping by distinct word
first leaves a few thousand rows to update.

`export` gives what serving reads: one vector per vocabulary word (row + n-gram mean, precomputed) and what an
unseen word gets (its n-grams; or, without sub-words, a hashed direction or nothing). `finish` writes the exported
table into the SentenceTransformer module, so the saved torch model and the numpy Encoder agree on every known word.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import torch

from pintext.subwords import SubwordVectors, ngram_buckets
from pintext.text import WordIds
from pintext.trainer.loop import PackedTexts
from pintext.trainer.tokenizer import UNK_ID

# Length of each n-gram row at the start. A word has ~15 n-grams, and the mean of 15 random unit rows is ~1/4 long:
# rows of length 8 make a typical word's n-gram part (at weight 0.5) about as long as its own IDF-scaled row, so a
# misspelling starts out near its word. Measured on the Home Depot pairs (search, mnrl, lr 0.005, exact NDCG@10 on
# held-out queries): row length 1 / 2.5 / 4 / 8 / 16 / 32 gave 0.316 / 0.321 / 0.326 / 0.330 / 0.319 / 0.307.
NGRAM_ROW_NORM = 8.0


class LazyAdam:
    """Adam on chosen rows of a table (torch.optim.SparseAdam's update, without building a sparse gradient).

    The rows' values and moments are gathered, updated by torch's fused Adam kernel (one pass instead of a dozen
    elementwise ones) and written back. SparseAdam's step is lr x sqrt(1 - beta2^t) / (1 - beta1^t) x m / (sqrt(v)
    + eps); the fused kernel divides by sqrt(v) / sqrt(1 - beta2^t) + eps', so eps' = eps / sqrt(1 - beta2^t)
    makes it the same update."""

    def __init__(self, table: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.table = table
        self.first = torch.zeros_like(table)
        self.second = torch.zeros_like(table)
        self.betas, self.eps = betas, eps

    def step(self, rows: torch.Tensor, grad: torch.Tensor, lr: float, step: int) -> None:
        """`rows` distinct; `grad` [len(rows), dim]; `step` counts from 1 (the bias correction's t)."""
        if len(rows) == 0:
            return
        beta1, beta2 = self.betas
        values = self.table.index_select(0, rows)
        first = self.first.index_select(0, rows)
        second = self.second.index_select(0, rows)
        torch._fused_adam_([values], [grad.contiguous()], [first], [second], [], [torch.tensor(float(step))],
                           lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                           eps=self.eps / (1 - beta2 ** step) ** 0.5, amsgrad=False, maximize=False)
        self.table.index_copy_(0, rows, values)
        self.first.index_copy_(0, rows, first)
        self.second.index_copy_(0, rows, second)


@dataclass(frozen=True)
class SubwordStart:
    """The n-gram part before training: `mix` ([vocab, buckets]: row w holds idf(w) x weight / k at each of w's k
    n-gram buckets; UNK: none) and the n-gram rows' first values (random directions of length `NGRAM_ROW_NORM`).
    Both depend on the vocabulary and the sub-word settings only, so the trials of one selection share them."""

    mix: scipy.sparse.csr_matrix
    ngrams: np.ndarray  # [buckets, dim] float32; never trained itself (TrainedTable copies it)

    @classmethod
    def make(cls, tokenizer, idf: np.ndarray, *, buckets: int, weight: float, dim: int, min_n: int, max_n: int,
             seed: int) -> "SubwordStart":
        start = np.random.default_rng(seed + 1).standard_normal((buckets, dim))
        start *= NGRAM_ROW_NORM / np.linalg.norm(start, axis=1, keepdims=True)
        vocab_size = tokenizer.get_vocab_size()
        words = [""] * vocab_size
        for word, index in tokenizer.get_vocab().items():
            words[index] = word
        grams = [ngram_buckets(word, min_n, max_n, buckets) if index != UNK_ID else []
                 for index, word in enumerate(words)]
        lengths = np.array([len(g) for g in grams], dtype=np.int64)
        rows = np.repeat(np.arange(vocab_size), lengths)
        word_scale = np.asarray(idf, dtype=np.float32) * np.float32(weight)
        values = np.repeat(word_scale / np.maximum(lengths, 1), lengths).astype(np.float32)
        columns = np.fromiter((b for g in grams for b in g), dtype=np.int64, count=int(lengths.sum()))
        mix = scipy.sparse.csr_matrix((values, (rows, columns)), shape=(vocab_size, buckets))
        return cls(mix, start.astype(np.float32))


class TrainedTable:
    """The word table (and n-gram table) the loop trains; see the module docstring."""

    def __init__(self, module, *, oov: Any = None, idf: np.ndarray | None = None, unseen_idf: float = 1.0,
                 buckets: int = 0, weight: float = 0.0, min_n: int = 3, max_n: int = 5, seed: int = 0,
                 start: "SubwordStart | None" = None) -> None:
        """`start`: the n-gram part's fixed layout and first values for these settings, when already made (trials
        of one selection share it: `SubwordStart.make`); made here otherwise."""
        self.module = module
        self.tokenizer = module.tokenizer
        self._word_ids = WordIds(self.tokenizer, UNK_ID)
        self.words = torch.from_numpy(module.table().copy())
        self.words[UNK_ID] = 0.0
        self.vocab_size, dim = self.words.shape
        self.subwords = buckets > 0
        self.oov = oov
        self.min_n, self.max_n = min_n, max_n
        self.scale = float(weight * unseen_idf)
        if self.subwords:
            assert idf is not None
            if start is None:
                start = SubwordStart.make(self.tokenizer, idf, buckets=buckets, weight=weight, dim=dim, min_n=min_n,
                                          max_n=max_n, seed=seed)
            self.ngrams = torch.from_numpy(start.ngrams.copy())  # trained in place: the shared start stays as made
            self.mix = start.mix
        else:
            self.ngrams = torch.zeros((0, dim), dtype=torch.float32)
            self.mix = scipy.sparse.csr_matrix((self.vocab_size, 0), dtype=np.float32)
        self.optimizers = (LazyAdam(self.words), LazyAdam(self.ngrams))
        self._words, self._ngrams = self.words.numpy(), self.ngrams.numpy()  # the same memory, for numpy's products
        self._pending: tuple[np.ndarray, scipy.sparse.csr_matrix, Any, torch.Tensor] | None = None

    # ---- the loop's side --------------------------------------------------------------------------------------

    def pack(self, texts: Sequence[str]) -> PackedTexts:
        return PackedTexts.of(self._word_ids, texts)

    def embed(self, parts: Sequence[tuple[PackedTexts, np.ndarray]]) -> list[torch.Tensor]:
        """The vectors of the texts `rows` of each packed set, through one set of distinct words (remembered for
        `update`). A text's unknown words (only with --min-count > 1) are left out, as the module leaves them.

        The forward pass is two sparse products in numpy (words -> texts is linear): the texts' vectors are a leaf
        tensor the loss differentiates, and `update` carries its gradient back to the rows by hand (the transposed
        products), so autograd never sees the tables."""
        bags = [packed.bag(rows) for packed, rows in parts]
        flat = np.concatenate([ids for ids, _ in bags])
        distinct, position = np.unique(flat, return_inverse=True)
        vectors = self._words[distinct]
        used = None
        if self.subwords:
            used = self.mix[distinct]
            vectors += _sparse_times(used, self.ngrams)
        means = _mean_matrix(bags, position.reshape(-1), len(distinct))
        texts = torch.from_numpy(np.asarray(means @ vectors, dtype=np.float32))
        if torch.is_grad_enabled():
            texts.requires_grad_(True)
            self._pending = (distinct, means, used, texts)
        out, begin = [], 0
        for _, offsets in bags:
            out.append(texts[begin:begin + len(offsets)])
            begin += len(offsets)
        return out

    def update(self, lr: float, step: int) -> None:
        """Lazy Adam on the rows the last `embed` used, with the gradient its texts received."""
        assert self._pending is not None
        distinct, means, used, texts = self._pending
        self._pending = None
        if texts.grad is None:
            return
        grad = np.asarray(means.T @ texts.grad.numpy(), dtype=np.float32)  # d loss / d word vector, per distinct word
        known = distinct != UNK_ID
        with torch.no_grad():
            self.optimizers[0].step(torch.from_numpy(distinct[known]), torch.from_numpy(grad[known]), lr, step)
            if used is not None and used.nnz:
                columns, local = np.unique(used.indices, return_inverse=True)
                to_rows = scipy.sparse.csr_matrix((used.data, local.reshape(-1), used.indptr),
                                                  shape=(len(distinct), len(columns)))
                # Transposed to CSR first: its row-wise product is ~1.4x scipy's CSC one, with the same sums.
                ngram_grad = np.asarray(to_rows.T.tocsr() @ grad, dtype=np.float32)
                self.optimizers[1].step(torch.from_numpy(columns.astype(np.int64)), torch.from_numpy(ngram_grad),
                                        lr, step)

    # ---- what is kept and served ------------------------------------------------------------------------------

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.words.numpy().copy(), self.ngrams.numpy().copy()

    def restore(self, raw: tuple[np.ndarray, np.ndarray]) -> None:
        self.words.copy_(torch.from_numpy(raw[0]))
        self.ngrams.copy_(torch.from_numpy(raw[1]))

    def export(self) -> tuple[np.ndarray, Any]:
        """(one vector per vocabulary word, what an unseen word gets)."""
        words = self.words.numpy()
        if not self.subwords:
            return words.copy(), self.oov
        ngrams = self.ngrams.numpy()
        table = (words + np.asarray(self.mix @ ngrams, dtype=np.float32)).astype(np.float32)
        table[UNK_ID] = 0.0
        return table, SubwordVectors(np.ascontiguousarray(ngrams, dtype=np.float32), self.scale, self.min_n,
                                     self.max_n)

    def finish(self) -> Any:
        """Write the exported word table into the module (what `model.save` keeps); what unseen words get."""
        table, oov = self.export()
        with torch.no_grad():
            self.module.embedding.weight.copy_(torch.from_numpy(table))
        return oov


def _sparse_times(matrix: scipy.sparse.csr_matrix, dense: torch.Tensor) -> np.ndarray:
    """`matrix @ dense` through torch's CSR product: each output row sums its entries in the same order as scipy's
    (the same bits), on every core (scipy's is single-threaded): ~3.1 -> 0.8 ms for a batch's words x n-grams."""
    with warnings.catch_warnings():
        # torch says its CSR tensors are "beta"; the one product used here is checked against scipy's
        # (tests/test_subwords.py), so a user's `pintext train` need not print that.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        rows = torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                       torch.from_numpy(matrix.indices.astype(np.int64)),
                                       torch.from_numpy(matrix.data), size=matrix.shape, check_invariants=False)
    return torch.sparse.mm(rows, dense).numpy()


def _mean_matrix(bags: Sequence[tuple[np.ndarray, np.ndarray]], position: np.ndarray,
                 columns: int) -> scipy.sparse.csr_matrix:
    """[texts, distinct words]: row t holds 1 / (t's known words) at each known word of t (bag layout: `offsets`
    into `ids`, `position` = each id's distinct-word index); a text with no known word is an empty row (zeros)."""
    ids = np.concatenate([ids for ids, _ in bags])
    begins = np.cumsum([0] + [len(bag_ids) for bag_ids, _ in bags[:-1]])
    offsets = np.concatenate([bag_offsets + begin for (_, bag_offsets), begin in zip(bags, begins)])
    texts = len(offsets)
    lengths = np.diff(offsets, append=len(ids))
    text_of = np.repeat(np.arange(texts), lengths)
    known = ids != UNK_ID
    counts = np.maximum(np.bincount(text_of, weights=known, minlength=texts), 1.0)
    weights = (known / counts[text_of]).astype(np.float32)
    return scipy.sparse.csr_matrix((weights, (text_of, position)), shape=(texts, columns))
