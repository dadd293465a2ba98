"""Sub-word vectors: n-gram buckets, the runtime's sub-word table, and what training makes of misspellings."""

import json

import numpy as np
import pytest
import torch

from pintext.encoder import Encoder, RuntimeArtifactError, write_runtime
from pintext.subwords import SUBWORDS_FILE, SubwordVectors, ngram_buckets
from pintext.trainer.tokenizer import train_word_tokenizer

DIM = 16


def test_ngram_buckets_are_stable_shared_and_never_empty():
    assert ngram_buckets("toilet", 3, 5, 1 << 16) == ngram_buckets("toilet", 3, 5, 1 << 16)
    assert len(ngram_buckets("toilet", 3, 5, 1 << 16)) == 6 + 5 + 4  # "<toilet>": 8 characters
    assert ngram_buckets("a", 3, 5, 7) and all(0 <= b < 7 for b in ngram_buckets("a", 3, 5, 7))
    assert ngram_buckets("x", 4, 5, 100)  # shorter than min_n with its marks: the marked word itself
    def shared(a: str, b: str) -> int:
        return len(set(ngram_buckets(a, 3, 5, 1 << 16)) & set(ngram_buckets(b, 3, 5, 1 << 16)))

    assert shared("toilet", "toliet") == 2  # "<to" and "et>"
    assert shared("bracket", "brackets") == 6 + 5 + 4  # every n-gram of "<bracket": all but the ones ending ">"
    assert shared("illumination", "ilumination") >= 20
    # crc32 of the UTF-8 bytes, not Python's salted hash: the same bucket in every process.
    import zlib
    assert ngram_buckets("ab", 4, 4, 1000) == [zlib.crc32("<ab>".encode()) % 1000]


@pytest.fixture
def runtime(tmp_path):
    tokenizer = train_word_tokenizer(["red sofa", "blue couch"], min_count=1)
    rng = np.random.default_rng(1)
    table = rng.normal(size=(tokenizer.get_vocab_size(), DIM)).astype(np.float32)
    table[0] = 0
    oov = SubwordVectors(rng.normal(size=(97, DIM)).astype(np.float32), scale=2.0)
    return tokenizer, table, oov, write_runtime(tmp_path / "rt", tokenizer, table, oov=oov)


def test_unseen_words_are_their_ngram_mean_times_scale(runtime):
    tokenizer, table, oov, folder = runtime
    encoder = Encoder.load(folder)
    assert isinstance(encoder.oov, SubwordVectors) and encoder.oov.to_dict() == oov.to_dict()
    np.testing.assert_array_equal(encoder.oov.table, oov.table)
    unseen = oov.table[ngram_buckets("zanzibar", 3, 5, 97)].mean(axis=0) * 2.0
    vectors = encoder.encode(["red sofa", "red zanzibar", "zanzibar"])
    np.testing.assert_allclose(vectors[0], table[[tokenizer.token_to_id("red"), tokenizer.token_to_id("sofa")]]
                               .mean(axis=0), atol=1e-6)  # known words: their rows only
    np.testing.assert_allclose(vectors[1], (table[tokenizer.token_to_id("red")] + unseen) / 2, atol=1e-5)
    np.testing.assert_allclose(vectors[2], unseen, atol=1e-5)


def test_word_vectors_are_each_words_own_vector(runtime, tmp_path):
    tokenizer, table, oov, folder = runtime
    words = ["red", "zanzibar", "couch", "sofa"]
    encoder = Encoder.load(folder)
    np.testing.assert_array_equal(encoder.word_vectors(words), encoder.encode(words))
    assert encoder.word_vectors([]).shape == (0, DIM)
    # Without sub-words an unseen word has no meaning to compare: zeros, not its hashed direction.
    plain = Encoder.load(write_runtime(tmp_path / "plain", tokenizer, table))
    got = plain.word_vectors(words)
    assert not got[1].any() and np.array_equal(got[[0, 2, 3]], plain.encode(["red", "couch", "sofa"]))


def test_the_ngram_table_is_part_of_the_model(runtime, tmp_path):
    tokenizer, table, oov, folder = runtime
    changed = SubwordVectors(oov.table + 1.0, scale=oov.scale)
    other = write_runtime(tmp_path / "other", tokenizer, table, oov=changed)
    assert Encoder.load(other).fingerprint != Encoder.load(folder).fingerprint
    np.save(folder / SUBWORDS_FILE, oov.table + 1.0)  # swapped behind the fingerprint's back
    with pytest.raises(RuntimeArtifactError, match="fingerprint"):
        Encoder.load(folder)
    (folder / SUBWORDS_FILE).unlink()
    with pytest.raises(RuntimeArtifactError, match=SUBWORDS_FILE):
        Encoder.load(folder)
    # Written again without sub-words, the folder keeps no stale n-gram table.
    write_runtime(folder, tokenizer, table)
    assert not (folder / SUBWORDS_FILE).exists() and "oov" not in json.loads((folder / "runtime.json").read_text())


def test_lazy_adam_is_sparse_adam_on_the_rows_used():
    from pintext.trainer.tables import LazyAdam

    rng = np.random.default_rng(3)
    start = torch.from_numpy(rng.normal(size=(10, 4)).astype(np.float32))
    ours = start.clone()
    reference = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.SparseAdam([reference], lr=0.1)
    lazy = LazyAdam(ours)
    for step, rows in enumerate(([1, 3, 4], [3, 7], [1, 7, 9]), start=1):
        grad = torch.from_numpy(rng.normal(size=(len(rows), 4)).astype(np.float32))
        index = torch.tensor(rows)
        reference.grad = torch.sparse_coo_tensor(index[None, :], grad, size=(10, 4), check_invariants=False)
        optimizer.step()
        lazy.step(index, grad, lr=0.1, step=step)
    torch.testing.assert_close(ours, reference.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[[0, 2, 5, 6, 8]], start[[0, 2, 5, 6, 8]])  # untouched rows keep their value


def test_the_rows_get_autograds_gradient_through_words_ngrams_and_means():
    """`TrainedTable.embed` computes texts in numpy and `update` carries their gradient back by hand: the rows each
    optimizer receives equal autograd's through the plain composition (row + n-gram mix, mean of known words)."""
    from types import SimpleNamespace

    from pintext.trainer.tables import TrainedTable

    texts = ["red sofa", "blue couch", "red red couch", "", "sofa bed"]
    tokenizer = train_word_tokenizer(texts, min_count=1)
    rng = np.random.default_rng(5)
    start = rng.normal(size=(tokenizer.get_vocab_size(), DIM)).astype(np.float32)
    module = SimpleNamespace(tokenizer=tokenizer, table=lambda: start)
    idf = rng.uniform(1, 3, size=tokenizer.get_vocab_size()).astype(np.float32)
    table = TrainedTable(module, idf=idf, buckets=31, weight=0.5, seed=2)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Recorder:
        def step(self, rows, grad, lr, step):
            seen.append((rows.numpy().copy(), grad.numpy().copy()))

    table.optimizers = (Recorder(), Recorder())
    words = torch.from_numpy(table.words.numpy().copy()).requires_grad_(True)
    ngrams = torch.from_numpy(table.ngrams.numpy().copy()).requires_grad_(True)
    packed = table.pack(texts)
    rows = np.array([0, 2, 3, 4])
    anchors, positives = table.embed([(packed, rows), (packed, rows[::-1].copy())])
    target = torch.from_numpy(rng.normal(size=(len(rows), DIM)).astype(np.float32))
    ((anchors * target).sum() + (positives ** 2).sum()).backward()
    table.update(0.1, 1)

    mix = torch.from_numpy(table.mix.toarray())
    vectors = words + mix @ ngrams

    def mean(row: int) -> torch.Tensor:
        ids = [i for i in packed.ids[packed.starts[row]:packed.starts[row] + packed.lengths[row]] if i != 0]
        return vectors[ids].mean(dim=0) if ids else torch.zeros(DIM)

    ref_anchors = torch.stack([mean(r) for r in rows])
    ref_positives = torch.stack([mean(r) for r in rows[::-1]])
    torch.testing.assert_close(anchors.detach(), ref_anchors.detach(), rtol=1e-5, atol=1e-5)
    ((ref_anchors * target).sum() + (ref_positives ** 2).sum()).backward()
    (word_rows, word_grad), (ngram_rows, ngram_grad) = seen
    assert 0 not in word_rows  # [UNK] is never trained
    torch.testing.assert_close(torch.from_numpy(word_grad), words.grad[word_rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(ngram_grad), ngrams.grad[ngram_rows], rtol=1e-5, atol=1e-5)
    untouched = np.setdiff1d(np.arange(len(ngrams)), ngram_rows)
    assert torch.count_nonzero(ngrams.grad[untouched]) == 0  # every row with a gradient was handed over


def test_the_sparse_product_through_torch_equals_scipys_to_the_bit():
    """The forward pass multiplies a batch's words x n-grams mix by the n-gram table through torch's CSR product
    (on every core); it must give scipy's sums exactly, or trained models would drift from run to run."""
    import scipy.sparse

    from pintext.trainer.tables import _sparse_times

    rng = np.random.default_rng(3)
    rows, buckets = 300, 4096
    keep = np.ones(rows, dtype=np.float32)
    keep[7] = 0.0  # a word with no n-gram
    mix = scipy.sparse.diags(keep) @ scipy.sparse.random(rows, buckets, density=0.004, format="csr", dtype=np.float32,
                                                         random_state=4)
    mix = scipy.sparse.csr_matrix(mix)
    mix.eliminate_zeros()
    table = rng.normal(size=(buckets, DIM)).astype(np.float32)
    product = _sparse_times(mix, torch.from_numpy(table))
    assert product.dtype == np.float32 and product.shape == (rows, DIM)
    np.testing.assert_array_equal(product, np.asarray(mix @ table))
    assert not product[7].any()
