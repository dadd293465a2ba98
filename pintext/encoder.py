"""The torch-free PinText encoder: a vocabulary lookup and a mean, on numpy, scipy and `tokenizers` only.

A runtime folder (written by `pintext train`, see NOTES.md) holds:

- `tokenizer.json`: the `tokenizers` WordLevel tokenizer the model trained with. Out-of-vocabulary words map
  to its unknown token, which is IGNORED: a text's vector is the mean of its KNOWN words' vectors.
- `embeddings.npy`: the word table, float32 or float16, shape [vocab, dim]. The unknown token's row is unused.
- `runtime.json`: `format`, `dim`, `dtype`, `vocab_size`, `unk_token`, `unk_id` and `fingerprint` =
  sha256 over the bytes of tokenizer.json followed by the table's raw bytes (C order, stored dtype).

A text with no known word gets the zero vector. The mean is one sparse (texts x vocab) weight matrix times
the table, so no token's row is ever copied on its own (a per-token gather is ~3x slower at 256d).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse
from tokenizers import Tokenizer

from pintext.atomic import write_text
from pintext.subwords import KIND as SUBWORDS_KIND
from pintext.subwords import SUBWORDS_FILE, SubwordVectors
from pintext.text import WordIds, text_words

RUNTIME_FOLDER = "runtime"
TOKENIZER_FILE = "tokenizer.json"
EMBEDDINGS_FILE = "embeddings.npy"
RUNTIME_CONFIG_FILE = "runtime.json"
RUNTIME_FORMAT = 1
SUPPORTED_DTYPES = ("float32", "float16")
OOV_CACHE_SIZE = 200_000


class RuntimeArtifactError(ValueError):
    """A runtime folder is missing a file or its files disagree with each other."""


def fingerprint_of(tokenizer_json: bytes, table: np.ndarray, oov: "UnseenWords | None" = None) -> str:
    """sha256 over tokenizer.json's bytes followed by the table's raw bytes (C order, stored dtype), then, when
    unseen words get vectors, the canonical JSON of that setting (so a change of it is a change of model) and, for
    sub-words, the n-gram table's raw bytes."""
    digest = hashlib.sha256()
    digest.update(tokenizer_json)
    digest.update(np.ascontiguousarray(table).tobytes())
    if oov is not None:
        digest.update(json.dumps(oov.to_dict(), sort_keys=True).encode("utf-8"))
        if isinstance(oov, SubwordVectors):
            digest.update(np.ascontiguousarray(oov.table).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class HashedWords:
    """Vectors for words the vocabulary lacks: each unseen word gets its own fixed pseudo-random direction (seeded
    by a keyed hash of the word, so every process and machine agrees) of length `scale`.

    Why: a static table knows only the words of its training data, but a corpus keeps bringing new ones (product
    names, model numbers). Two texts that share an unseen word now match on it, as they would in BM25, instead of
    the word being dropped; in high dimensions these directions are nearly orthogonal to every other word. `scale`
    is the weight of a rare word (the IDF of a word seen once, see pintext.trainer.init). Measured on real product
    search with a corpus the trainer never saw: NDCG@10 0.576 -> 0.644 (docs/training.md)."""

    seed: int
    scale: float
    kind: str = "hashed"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "seed": int(self.seed), "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, data: dict) -> "HashedWords":
        if data.get("kind") != "hashed":
            raise RuntimeArtifactError(f"unknown out-of-vocabulary kind {data.get('kind')!r}")
        return cls(seed=int(data["seed"]), scale=float(data["scale"]))

    def vector(self, word: str, dim: int) -> np.ndarray:
        key = self.seed.to_bytes(8, "little", signed=False)
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8, key=key).digest()
        values = np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(dim)
        return (values * (self.scale / np.linalg.norm(values))).astype(np.float32)


UnseenWords = HashedWords | SubwordVectors  # what gives a word the vocabulary lacks its vector


def unseen_words_from(config: dict, folder: Path) -> "UnseenWords | None":
    """runtime.json's `oov` setting as an object (the sub-word table read from beside it), or None."""
    data = config.get("oov")
    if not data:
        return None
    if data.get("kind") == SUBWORDS_KIND:
        path = folder / SUBWORDS_FILE
        if not path.is_file():
            raise RuntimeArtifactError(f"{path}: missing (runtime.json's field 'oov' names sub-words)")
        table = np.load(path, allow_pickle=False)
        if table.ndim != 2 or table.shape[1] != config.get("dim") or table.shape[0] != data.get("buckets"):
            raise RuntimeArtifactError(f"{path}: shape {table.shape} does not match runtime.json's 'dim' and "
                                       f"'oov.buckets'")
        return SubwordVectors.from_dict(data, table)
    return HashedWords.from_dict(data)


def _read_runtime_config(path: Path) -> dict:
    """runtime.json as a dict; anything else (not UTF-8, not JSON, not an object) is an error naming the file."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RuntimeArtifactError(f"{path}: not valid JSON ({error}); is this a PinText model folder? (`pintext "
                                   "train --out` writes it)") from None
    if not isinstance(config, dict):
        raise RuntimeArtifactError(f"{path}: expected a JSON object, found {type(config).__name__}")
    return config


def runtime_folder(model_dir: str | Path) -> Path:
    """The runtime folder of a model folder; a runtime folder itself is accepted as is."""
    path = Path(model_dir)
    if (path / RUNTIME_CONFIG_FILE).is_file():
        return path
    return path / RUNTIME_FOLDER


def write_runtime(
    folder: str | Path,
    tokenizer: Tokenizer,
    table: np.ndarray,
    *,
    dtype: str = "float32",
    unk_token: str = "[UNK]",
    extra: dict | None = None,
    oov: UnseenWords | None = None,
) -> Path:
    """Write a runtime folder (tokenizer.json, embeddings.npy, runtime.json); returns the folder.

    Used by the trainer's export, and by tests or tools that need an encoder without training one.
    """
    if dtype not in SUPPORTED_DTYPES:
        raise RuntimeArtifactError(f"dtype must be one of {SUPPORTED_DTYPES}, got {dtype!r}")
    table = np.ascontiguousarray(np.asarray(table, dtype=dtype))
    if table.ndim != 2 or table.shape[0] != tokenizer.get_vocab_size():
        raise RuntimeArtifactError(
            f"table shape {table.shape} does not match the tokenizer's vocabulary of {tokenizer.get_vocab_size()}"
        )
    unk_id = tokenizer.token_to_id(unk_token)
    if unk_id is None:
        raise RuntimeArtifactError(f"the tokenizer has no unknown token {unk_token!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_json = tokenizer.to_str().encode("utf-8")
    (folder / TOKENIZER_FILE).write_bytes(tokenizer_json)
    np.save(folder / EMBEDDINGS_FILE, table, allow_pickle=False)
    if isinstance(oov, SubwordVectors):
        oov = SubwordVectors(np.ascontiguousarray(np.asarray(oov.table, dtype=dtype)), oov.scale, oov.min_n,
                             oov.max_n)
        np.save(folder / SUBWORDS_FILE, oov.table, allow_pickle=False)
    else:
        (folder / SUBWORDS_FILE).unlink(missing_ok=True)
    config = {
        "format": RUNTIME_FORMAT,
        "dim": int(table.shape[1]),
        "dtype": dtype,
        "vocab_size": int(table.shape[0]),
        "unk_token": unk_token,
        "unk_id": int(unk_id),
        "fingerprint": fingerprint_of(tokenizer_json, table, oov),
        **({"oov": oov.to_dict()} if oov is not None else {}),
        **(extra or {}),
    }
    # Last, and whole or not at all: a folder whose other files were cut short has no runtime.json, and loading
    # it says so.
    write_text(folder / RUNTIME_CONFIG_FILE, json.dumps(config, indent=2) + "\n", "runtime config")
    return folder


@dataclass(frozen=True)
class Coverage:
    """How much of a text collection the vocabulary knows."""

    token_share: float  # known words / all words
    text_share: float  # texts with at least one known word / all texts
    tokens: int
    known_tokens: int
    texts: int
    texts_with_known_word: int

    def __iter__(self):
        # Unpacks as (token share, text share), the pair most callers want.
        return iter((self.token_share, self.text_share))


@dataclass(frozen=True)
class PreparedTexts:
    """Texts turned into the sparse mean over their words once (`Encoder.prepare`), to be encoded again with other
    tables of the same tokenizer (`Encoder.encode_prepared`): validation scores the same texts every half epoch."""

    texts: Sequence[str]
    per_text: list[list[int]]
    lengths: np.ndarray
    mean_weights: scipy.sparse.csr_matrix  # [texts, vocab]: 1 / (words counted) at each known word
    known_counts: np.ndarray  # the known words of each text
    unseen_rows: np.ndarray  # texts with an unseen word (their vectors add those words' own vectors)
    counts_unseen: bool  # whether unseen words count in the mean (the encoder has an `oov`)
    tokenizer: Tokenizer


class Encoder:
    """Embeds texts as the mean of their known words' vectors. Thread-safe for reading."""

    def __init__(self, tokenizer: Tokenizer, table: np.ndarray, *, unk_id: int, fingerprint: str,
                 oov: UnseenWords | None = None) -> None:
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        # Computed in float32 even when stored as float16: the mean of many halves loses too much otherwise.
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        self._unk_id = unk_id
        self._word_ids = WordIds(tokenizer, unk_id)
        self.fingerprint = fingerprint
        self.oov = oov
        self._oov_vectors: dict[str, np.ndarray] = {}  # unseen word -> its hashed vector (bounded, see _oov_vector)
        self._vocabulary: dict[str, int] | None = None  # word -> id, read from the tokenizer on first use

    @property
    def embeds_unseen_words(self) -> bool:
        """Whether an unseen word gets a vector that means something: its character n-grams (sub-words), learned
        with the words. A hashed unseen word (`HashedWords`) is a keyed random direction: it only keeps such a word
        from vanishing from a text's mean, and a query of nothing but such words is BM25's to answer."""
        return isinstance(self.oov, SubwordVectors)

    @classmethod
    def load(cls, model_dir: str | Path, *, verify: bool = True) -> "Encoder":
        """Load `MODEL/runtime/` (or a runtime folder itself). `verify` recomputes the fingerprint."""
        folder = runtime_folder(model_dir)
        for name in (TOKENIZER_FILE, EMBEDDINGS_FILE, RUNTIME_CONFIG_FILE):
            if not (folder / name).is_file():
                raise RuntimeArtifactError(f"{folder / name}: missing; is {model_dir} a PinText model folder?")
        config = _read_runtime_config(folder / RUNTIME_CONFIG_FILE)
        tokenizer_json = (folder / TOKENIZER_FILE).read_bytes()
        try:
            table = np.load(folder / EMBEDDINGS_FILE, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise RuntimeArtifactError(f"{folder / EMBEDDINGS_FILE}: not a readable .npy table ({error})") from None
        try:
            tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
        except Exception as error:  # noqa: BLE001 - `tokenizers` raises a bare Exception on a broken file
            raise RuntimeArtifactError(f"{folder / TOKENIZER_FILE}: not a tokenizer ({error})") from None
        try:
            cls._check(folder, config, tokenizer, table)
            oov = unseen_words_from(config, folder)
        except (TypeError, KeyError, AttributeError) as error:  # a field of the wrong kind
            raise RuntimeArtifactError(f"{folder / RUNTIME_CONFIG_FILE}: a field has the wrong type "
                                       f"({error})") from None
        if verify and fingerprint_of(tokenizer_json, table, oov) != config["fingerprint"]:
            raise RuntimeArtifactError(f"{folder / RUNTIME_CONFIG_FILE}: field 'fingerprint' does not match the files")
        return cls(tokenizer, table, unk_id=int(config["unk_id"]), fingerprint=config["fingerprint"], oov=oov)

    @staticmethod
    def _check(folder: Path, config: dict, tokenizer: Tokenizer, table: np.ndarray) -> None:
        where = folder / RUNTIME_CONFIG_FILE
        for field in ("dim", "dtype", "vocab_size", "unk_id", "fingerprint"):
            if field not in config:
                raise RuntimeArtifactError(f"{where}: field {field!r} is missing")
        if str(table.dtype) != config["dtype"]:
            raise RuntimeArtifactError(f"{where}: field 'dtype' says {config['dtype']}, the table is {table.dtype}")
        if table.shape != (config["vocab_size"], config["dim"]):
            raise RuntimeArtifactError(
                f"{where}: fields 'vocab_size'/'dim' say {(config['vocab_size'], config['dim'])}, "
                f"the table is {table.shape}"
            )
        if tokenizer.get_vocab_size() != config["vocab_size"]:
            raise RuntimeArtifactError(
                f"{where}: field 'vocab_size' is {config['vocab_size']}, "
                f"tokenizer.json has {tokenizer.get_vocab_size()}"
            )

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._table.shape[1])

    @property
    def vocab_size(self) -> int:
        """Rows of the word table, the unknown token included."""
        return int(self._table.shape[0])

    @property
    def unk_id(self) -> int:
        """Id of the unknown token (out-of-vocabulary words), which the mean ignores."""
        return self._unk_id

    @property
    def tokenizer(self) -> Tokenizer:
        """The `tokenizers` tokenizer (normalizer + word split + vocabulary)."""
        return self._tokenizer

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Vocabulary ids of each text's words (the unknown id for out-of-vocabulary words)."""
        return self._word_ids(texts)

    def _flat_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray]:
        """(ids per text, number of words per text, every token's id, every token's text row) for a batch."""
        per_text = self.token_ids(texts)
        lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
        ids = np.fromiter(itertools.chain.from_iterable(per_text), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(per_text), dtype=np.int64), lengths)
        return per_text, lengths, ids, rows

    def _known_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of each known token, its vocabulary id, number of words per text) for a batch."""
        _, lengths, ids, rows = self._flat_ids(texts)
        known = ids != self._unk_id
        return rows[known], ids[known], lengths

    def _encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode_counting(texts)[0]

    def _encode_counting(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of a batch, and how many of each text's words the vocabulary knows (one tokenizer pass)."""
        prepared = self.prepare(texts)
        return self.encode_prepared(prepared), prepared.known_counts

    def prepare(self, texts: Sequence[str]) -> PreparedTexts:
        """`texts` tokenized and turned into their sparse word mean, for `encode_prepared` with this encoder or
        another of the same tokenizer and kind of unseen-word handling (any table)."""
        per_text, lengths, ids, rows = self._flat_ids(texts)
        known = ids != self._unk_id
        known_counts = np.bincount(rows[known], minlength=len(texts))
        # Each word counted in the mean weighs 1/(words counted in its text): the known words, or every word when
        # unseen ones are hashed in. A text with none keeps an all-zero row.
        counted = lengths if self.oov is not None else known_counts
        weights = (1.0 / np.maximum(counted, 1)[rows[known]]).astype(np.float32)
        mean_weights = scipy.sparse.csr_matrix((weights, (rows[known], ids[known])),
                                               shape=(len(texts), self.vocab_size))
        unseen_rows = np.unique(rows[~known]) if self.oov is not None else np.zeros(0, dtype=np.int64)
        return PreparedTexts(texts, per_text, lengths, mean_weights, known_counts, unseen_rows, self.oov is not None,
                             self._tokenizer)

    def encode_prepared(self, prepared: PreparedTexts) -> np.ndarray:
        """The vectors of prepared texts with this encoder's table: the same values `encode` gives them."""
        if prepared.tokenizer is not self._tokenizer or prepared.counts_unseen != (self.oov is not None):
            raise ValueError("texts prepared by an encoder with another tokenizer or unseen-word handling")
        vectors = np.asarray(prepared.mean_weights @ self._table, dtype=np.float32)
        for index in prepared.unseen_rows:  # only texts with an unseen word take this slower path
            unseen = [word for word, word_id in zip(text_words(prepared.texts[index]), prepared.per_text[index])
                      if word_id == self._unk_id]
            # Row after row, as a running sum would add them (numpy reduces axis 0 in order): same bits.
            total = np.add.reduce(np.stack([self._oov_vector(word) for word in unseen]), axis=0)
            vectors[index] += total / prepared.lengths[index]
        return vectors

    def encode_query(self, text: str) -> tuple[np.ndarray, int]:
        """One text's vector (as `encode`) and the number of its words the vocabulary knows, in one pass: what
        serving asks of every query (a query with no known word goes to BM25)."""
        vectors, known = self._encode_counting([text])
        return vectors[0], int(known[0])

    def word_terms(self, text: str) -> list[tuple[str, float, np.ndarray]]:
        """(word, weight, vector) of each word `encode` counts in `text`: the text's vector is exactly the sum of
        weight x vector, so a score linear in it splits into one term per word (`pintext.api.explain`)."""
        words = text_words(text)
        ids = self.token_ids([text])[0]
        known = [word_id != self._unk_id for word_id in ids]
        counted = len(ids) if self.oov is not None else sum(known)
        if not counted:
            return []
        terms = []
        for word, word_id, is_known in zip(words, ids, known):
            if is_known:
                terms.append((word, 1.0 / counted, np.asarray(self._table[word_id], dtype=np.float32)))
            elif self.oov is not None:
                terms.append((word, 1.0 / counted, self._oov_vector(word)))
        return terms

    def word_vectors(self, words: Sequence[str]) -> np.ndarray:
        """[n, dim] float32: each normalized word's own vector (`encode([word])` for one word: its row, or its
        sub-words' when the model embeds unseen words); zeros for an unseen word the model cannot embed (a hashed
        one is a random direction, no meaning to compare). What the nearest-word share compares
        (`pintext.exact_match`), without a tokenizer pass."""
        if self._vocabulary is None:
            self._vocabulary = self._tokenizer.get_vocab()
        lookup, unk = self._vocabulary.get, self._unk_id
        ids = np.fromiter((lookup(word, unk) for word in words), dtype=np.int64, count=len(words))
        vectors = self._table[ids]
        unseen = np.flatnonzero(ids == unk)
        for row in unseen:
            vectors[row] = self._oov_vector(words[int(row)]) if self.embeds_unseen_words else 0.0
        return vectors

    def _oov_vector(self, word: str) -> np.ndarray:
        vector = self._oov_vectors.get(word)
        if vector is None:
            assert self.oov is not None
            if len(self._oov_vectors) >= OOV_CACHE_SIZE:
                self._oov_vectors.clear()  # bounded memory on an endless stream of new words
            vector = self._oov_vectors[word] = self.oov.vector(word, self.dim)
        return vector

    def encode(self, texts: Iterable[str] | str, batch_size: int = 4096) -> np.ndarray:
        """Vectors [n, dim] float32: the mean of each text's known words' vectors, zeros where none is known."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_size = max(1, int(batch_size))
        parts = [self._encode_batch(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def coverage(self, texts: Iterable[str], batch_size: int = 4096) -> Coverage:
        """Share of words the vocabulary knows, and share of texts with at least one known word."""
        texts = list(texts)
        tokens = known_tokens = texts_with_known = 0
        for start in range(0, len(texts), max(1, batch_size)):
            batch = texts[start : start + batch_size]
            rows, _ids, lengths = self._known_ids(batch)
            tokens += int(lengths.sum())
            known_tokens += len(rows)
            texts_with_known += int(np.count_nonzero(np.bincount(rows, minlength=len(batch))))
        return Coverage(
            token_share=known_tokens / tokens if tokens else 0.0,
            text_share=texts_with_known / len(texts) if texts else 0.0,
            tokens=tokens,
            known_tokens=known_tokens,
            texts=len(texts),
            texts_with_known_word=texts_with_known,
        )

    def __repr__(self) -> str:
        return f"Encoder(dim={self.dim}, vocab_size={self.vocab_size}, fingerprint={self.fingerprint[:12]})"
