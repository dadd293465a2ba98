"""A local, server-free pins index with the same scoring as the OpenSearch one: the test oracle.

On disk, in one folder:

- `index.sqlite`: `pins(row, id, doc)` (doc = the pin's JSON without its vector), `tokens(token, row)` (the
  inverted index: one row per LSH token of a pin) and `meta(key, value)` (the same `_meta` the OpenSearch
  index carries: model fingerprint, dim, LSH config).
- `vectors.f32`: float32 rows, row r of `pins` at byte offset r * dim * 4, read through a memory map.

Search mirrors `pintext.queries`: the first stage counts the query tokens a pin holds (only pins with at least
one are candidates), the top `window` candidates are rescored by exact cosine. Tie rule, explicit here and the
one the OpenSearch adapter re-applies to its hits: higher score first, then the smaller pin id (string order).
OpenSearch breaks first-stage ties at the window's edge by its internal doc order instead, so the two agree
exactly whenever the window's last place is not tied (e.g. a window that holds all candidates).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pintext.serving.base import (
    BatchResult,
    IndexLayout,
    IndexNotFoundError,
    IndexStats,
    NodeInfo,
    PinNotFoundError,
    SearchHit,
    UnsupportedError,
    VectorQuery,
    rank,
)
from pintext.serving.filters import NO_FILTERS, Filters

DATABASE_FILE = "index.sqlite"
VECTORS_FILE = "vectors.f32"
# What an index holds on disk: the database, its write-ahead log (committed batches not yet checkpointed into the
# database) and the vectors.
STORE_FILES = (DATABASE_FILE, DATABASE_FILE + "-wal", VECTORS_FILE)
HAS_VECTOR_KEY = "has_vector"  # in a stored doc: false for a pin indexed without a vector (no known word)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pins (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (token, row))
    WITHOUT ROWID;
"""


class LocalIndexError(RuntimeError):
    """The local index folder is missing, or was built for another model."""


def cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine of each row of `matrix` with `vector`; 0 where either is the zero vector."""
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(vector))
    dots = matrix.astype(np.float64) @ vector.astype(np.float64)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def rank_key(score: float, pin_id: str) -> tuple[float, str]:
    """The tie rule of every PinText ranking: score descending, then pin id ascending."""
    return (-score, pin_id)


class LocalIndex:
    """An on-disk pins index in `folder`; `create()` it once, then `upsert()` and `search()`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._db: sqlite3.Connection | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.folder / DATABASE_FILE).is_file()

    def create(self, meta: dict) -> None:
        """Create the folder and its tables, recording `meta` (needs `dim`); an existing index is kept."""
        if "dim" not in meta:
            raise ValueError("local index meta needs 'dim'")
        self.folder.mkdir(parents=True, exist_ok=True)
        db = self._connect(create=True)
        with db:
            db.executescript(_SCHEMA)
            if not self.meta():
                db.execute("INSERT INTO meta (key, value) VALUES ('meta', ?)", (json.dumps(meta),))
        (self.folder / VECTORS_FILE).touch(exist_ok=True)

    def delete(self) -> None:
        """Remove the index files (the folder stays)."""
        self.close()
        for name in (DATABASE_FILE, VECTORS_FILE):
            (self.folder / name).unlink(missing_ok=True)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "LocalIndex":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def meta(self) -> dict:
        """The `_meta` recorded at creation ({} when absent)."""
        db = self._connect()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            return {}
        row = db.execute("SELECT value FROM meta WHERE key = 'meta'").fetchone()
        return json.loads(row[0]) if row else {}

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM pins").fetchone()[0])

    # ---- writing -------------------------------------------------------------------------------------------

    def upsert(self, pins: Sequence[dict], vectors: np.ndarray | Sequence[np.ndarray | None],
               tokens: Sequence[Sequence[str]]) -> tuple[int, int]:
        """Insert or replace pins by id with their vectors and tokens; returns (created, updated).

        A `None` vector is a pin with no known word: it is stored (its doc, `has_vector: false`) with a zero row
        and no tokens, so the first stage never finds it and `get` tells it apart.
        Vectors are written before the SQLite transaction commits, so a crash in between leaves at worst a
        replaced vector whose pin row is re-written by the next run (ingest is idempotent by id).
        """
        dim = self._dim()
        has_vector = [vector is not None for vector in vectors]
        rows = [np.zeros(dim, np.float32) if vector is None else np.asarray(vector) for vector in vectors]
        vectors = np.ascontiguousarray(rows, dtype=np.float32) if rows else np.zeros((0, dim), np.float32)
        if vectors.shape != (len(pins), dim):
            raise ValueError(f"expected vectors [{len(pins)}, {dim}], got {vectors.shape}")
        tokens = [list(pin_tokens) if ok else [] for pin_tokens, ok in zip(tokens, has_vector)]
        db = self._connect()
        # An id seen twice in one batch: its last version wins, the earlier ones count as updates, as in a bulk.
        latest: dict[str, tuple[dict, np.ndarray, Sequence[str]]] = {}
        for pin, vector, pin_tokens, ok in zip(pins, vectors, tokens, has_vector):
            latest[str(pin["id"])] = ({**pin, HAS_VECTOR_KEY: ok}, vector, pin_tokens)
        repeats = len(pins) - len(latest)
        with db, open(self.folder / VECTORS_FILE, "r+b") as vector_file:
            row_of = self._rows_of(list(latest))
            stale_tokens = self._stored_tokens(sorted(row_of.values()))
            next_row = int(db.execute("SELECT COALESCE(MAX(row) + 1, 0) FROM pins").fetchone()[0])
            inserts, updates, written = [], [], []
            for pin_id, (pin, vector, pin_tokens) in latest.items():
                doc = json.dumps({**pin, "lsh_tokens": list(pin_tokens)}, ensure_ascii=False)
                if pin_id in row_of:
                    updates.append((doc, row_of[pin_id]))
                else:
                    row_of[pin_id], next_row = next_row, next_row + 1
                    inserts.append((row_of[pin_id], pin_id, doc))
                written.append((row_of[pin_id], vector, pin_tokens))
            db.executemany("DELETE FROM tokens WHERE token = ? AND row = ?",
                           [(token, row) for row, stale in stale_tokens.items() for token in stale])
            db.executemany("INSERT INTO pins (row, id, doc) VALUES (?, ?, ?)", inserts)
            db.executemany("UPDATE pins SET doc = ? WHERE row = ?", updates)
            db.executemany("INSERT OR IGNORE INTO tokens (token, row) VALUES (?, ?)",
                           [(token, row) for row, _, pin_tokens in written for token in pin_tokens])
            for row, vector, _ in written:
                vector_file.seek(row * dim * 4)
                vector_file.write(vector.tobytes())
            vector_file.flush()
        created, updated = len(inserts), len(updates) + repeats
        return created, updated

    def patch(self, docs: Sequence[tuple[str, dict]]) -> tuple[int, dict[str, str]]:
        """Merge each document's fields into the stored pin with that id (its vector and tokens kept); returns
        (updated, {id: reason} for ids not stored)."""
        db = self._connect()
        failed: dict[str, str] = {}
        updated = 0
        with db:
            row_of = self._rows_of([doc_id for doc_id, _ in docs])
            stored = self._docs(sorted(row_of.values()))
            for doc_id, fields in docs:
                if doc_id not in row_of:
                    failed[doc_id] = f"document_missing: no pin {doc_id!r} in {self.folder}"
                    continue
                doc = stored[row_of[doc_id]]
                doc.update({key: value for key, value in fields.items() if key not in ("lsh_tokens", HAS_VECTOR_KEY)})
                db.execute("UPDATE pins SET doc = ? WHERE row = ?", (json.dumps(doc, ensure_ascii=False),
                                                                    row_of[doc_id]))
                updated += 1
        return updated, failed

    def size_bytes(self, checkpoint: bool = False) -> int:
        """Bytes of the index's files; with `checkpoint`, after moving the write-ahead log into the database."""
        if checkpoint:
            self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum((self.folder / name).stat().st_size for name in STORE_FILES if (self.folder / name).is_file())

    def compact(self) -> None:
        """Rewrite the database without free pages (SQLite's VACUUM), then checkpoint the log into it."""
        db = self._connect()
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ---- reading -------------------------------------------------------------------------------------------

    def get(self, pin_id: str) -> tuple[dict, np.ndarray | None] | None:
        """A stored pin (with its `lsh_tokens`) and its vector (None: indexed without one), or None."""
        found = self._connect().execute("SELECT row, doc FROM pins WHERE id = ?", (pin_id,)).fetchone()
        if not found:
            return None
        doc = json.loads(found[1])
        if not doc.pop(HAS_VECTOR_KEY, True):
            return doc, None
        return doc, np.array(self._vectors()[int(found[0])])

    def count_without_vector(self) -> int:
        """Pins stored with no vector (no known word)."""
        query = f"SELECT COUNT(*) FROM pins WHERE json_extract(doc, '$.{HAS_VECTOR_KEY}') = 0"
        return int(self._connect().execute(query).fetchone()[0])

    def first_stage(self, tokens: Sequence[str], exclude_ids: Sequence[str] = (),
                    filters: Filters = NO_FILTERS) -> list[tuple[int, str, int]]:
        """(row, pin id, tokens matched) of every pin sharing a token and passing `filters`, best first by the
        tie rule."""
        distinct = list(dict.fromkeys(tokens))
        if not distinct:
            return []
        placeholders = ",".join("?" * len(distinct))
        rows = self._connect().execute(
            f"SELECT p.row, p.id, COUNT(*) FROM tokens t JOIN pins p ON p.row = t.row "
            f"WHERE t.token IN ({placeholders}) GROUP BY p.row",
            distinct,
        ).fetchall()
        excluded = set(exclude_ids)
        candidates = [(int(row), pin_id, int(matched)) for row, pin_id, matched in rows if pin_id not in excluded]
        if filters:
            docs = self._docs([row for row, _, _ in candidates])
            candidates = [candidate for candidate in candidates if filters.matches(docs[candidate[0]])]
        return sorted(candidates, key=lambda c: rank_key(c[2], c[1]))

    def search(
        self,
        tokens: Sequence[str],
        vector: np.ndarray,
        k: int = 10,
        window: int = 500,
        exclude_ids: Sequence[str] = (),
        filters: Filters = NO_FILTERS,
    ) -> list[SearchHit]:
        """Top `k` of the `window` best first-stage candidates, by exact cosine (tie rule: then id)."""
        if k > window:
            raise ValueError(f"k ({k}) must not exceed the rescore window ({window})")
        candidates = self.first_stage(tokens, exclude_ids, filters)[:window]
        if not candidates:
            return []
        rows = np.array([row for row, _, _ in candidates])
        scores = cosine(np.asarray(self._vectors()[rows]), np.asarray(vector, dtype=np.float32))
        ranked = sorted(zip(candidates, scores), key=lambda item: rank_key(float(item[1]), item[0][1]))[:k]
        docs = self._docs([row for (row, _, _), _ in ranked])
        query_tokens = set(tokens)
        return [
            SearchHit(
                id=pin_id,
                score=float(score),
                cosine=float(score),
                first_stage_score=float(matched),
                source={key: value for key, value in docs[row].items() if key not in ("lsh_tokens", HAS_VECTOR_KEY)},
                matched_tokens=sorted(query_tokens & set(docs[row].get("lsh_tokens", []))),
            )
            for (row, pin_id, matched), score in ranked
        ]

    def filtered_rows(self, filters: Filters, exclude_ids: Sequence[str] = ()) -> list[tuple[int, str, dict]]:
        """(row, pin id, doc) of every pin with a vector that passes `filters` and is not excluded."""
        excluded = set(exclude_ids)
        found = []
        for row, pin_id, text in self._connect().execute("SELECT row, id, doc FROM pins ORDER BY row"):
            doc = json.loads(text)
            if doc.get(HAS_VECTOR_KEY, True) and pin_id not in excluded and filters.matches(doc):
                found.append((int(row), str(pin_id), doc))
        return found

    def exact_filtered(self, tokens: Sequence[str], vector: np.ndarray, k: int, filters: Filters,
                       exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        """Every pin passing `filters` by exact cosine (no first stage): a selective filter's exact answer."""
        passing = self.filtered_rows(filters, exclude_ids)
        if not passing:
            return []
        scores = cosine(np.asarray(self._vectors()[[row for row, _, _ in passing]]), np.asarray(vector, np.float32))
        ranked = sorted(zip(passing, scores), key=lambda item: rank_key(float(item[1]), item[0][1]))[:k]
        wanted = set(tokens)
        hits = []
        for (_, pin_id, doc), score in ranked:
            matched = sorted(wanted & set(doc.get("lsh_tokens", [])))
            hits.append(SearchHit(pin_id, float(score), float(score), float(len(matched)), _public(doc), matched))
        return hits

    # ---- helpers -------------------------------------------------------------------------------------------

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        if self._db is None:
            path = self.folder / DATABASE_FILE
            if not create and not path.is_file():
                raise LocalIndexError(f"{self.folder}: no local index here (build it with `pintext ingest FILE "
                                      "--engine local`)")
            # One connection per index, used from one thread at a time (ingest writes from its single worker
            # thread; the engine says thread_safe = False, so never two at once).
            self._db = sqlite3.connect(path, check_same_thread=False)
            # WAL + NORMAL: a process crash never loses a committed batch (only power loss could), and
            # batches commit without an fsync each, which the resume checkpoint does not need.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        return self._db

    def _rows_of(self, ids: Sequence[str]) -> dict[str, int]:
        """Rows of the ids already stored, looked up in chunks (SQLite caps bound parameters)."""
        found: dict[str, int] = {}
        distinct = list(dict.fromkeys(ids))
        for start in range(0, len(distinct), 900):
            chunk = distinct[start:start + 900]
            placeholders = ",".join("?" * len(chunk))
            query = f"SELECT id, row FROM pins WHERE id IN ({placeholders})"
            found.update((pin_id, int(row)) for pin_id, row in self._connect().execute(query, chunk))
        return found

    def _stored_tokens(self, rows: Sequence[int]) -> dict[int, list[str]]:
        """The LSH tokens stored with each row, from its doc (so postings can be deleted by primary key)."""
        return {row: doc.get("lsh_tokens", []) for row, doc in self._docs(rows).items()}

    def _dim(self) -> int:
        meta = self.meta()
        if "dim" not in meta:
            raise LocalIndexError(f"{self.folder / DATABASE_FILE}: no 'dim' in its meta; create the index first")
        return int(meta["dim"])

    def _vectors(self) -> np.ndarray:
        dim = self._dim()
        path = self.folder / VECTORS_FILE
        rows = path.stat().st_size // (dim * 4)
        if rows == 0:
            return np.zeros((0, dim), dtype=np.float32)
        return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))

    def _docs(self, rows: Sequence[int]) -> dict[int, dict]:
        """Stored docs by row, looked up in chunks (SQLite caps bound parameters)."""
        docs: dict[int, dict] = {}
        rows = list(rows)
        for start in range(0, len(rows), 900):
            chunk = rows[start:start + 900]
            placeholders = ",".join("?" * len(chunk))
            found = self._connect().execute(f"SELECT row, doc FROM pins WHERE row IN ({placeholders})", chunk)
            docs.update((int(row), json.loads(doc)) for row, doc in found)
        return docs


# ---- the engine ------------------------------------------------------------------------------------------------

ALIASES_FILE = "aliases.json"


class LocalEngine:
    """The serving protocol over local indices in one root folder: `ROOT/<index>/` each, aliases in
    `ROOT/aliases.json` (replaced atomically, so a reader sees the old or the new target, never neither).

    It has no BM25 (no analyzer to match Lucene's): `bm25` raises UnsupportedError, which the CLI reports."""

    name = "local"
    thread_safe = False  # one SQLite writer per index

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._open: dict[str, LocalIndex] = {}
        self.took: list[float] | None = None

    def describe(self) -> str:
        return f"local index folder {self.root.resolve()}"

    def close(self) -> None:
        for index in self._open.values():
            index.close()
        self._open.clear()

    # ---- indices and aliases -------------------------------------------------------------------------------

    def _index(self, name: str) -> LocalIndex:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"local index name {name!r}: want a plain folder name")
        if name not in self._open:
            self._open[name] = LocalIndex(self.root / name)
        return self._open[name]

    def _concrete(self, name: str) -> LocalIndex:
        target = self.alias_target(name)
        if target is None:
            raise IndexNotFoundError(f"no local index {name!r} in {self.root}")
        return self._index(target)

    def _aliases(self) -> dict[str, str]:
        path = self.root / ALIASES_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def exists(self, index: str) -> bool:
        return self.alias_target(index) is not None

    def create(self, index: str, dim: int, meta: dict, shards: int = 1, replicas: int = 0) -> list[str]:
        self._index(index).create({**meta, "dim": int(dim)})
        return []

    def delete(self, index: str) -> bool:
        local = self._index(index)
        existed = local.exists()
        local.delete()
        self._open.pop(index, None)
        aliases = {alias: target for alias, target in self._aliases().items() if target != index}
        self._write_aliases(aliases)
        return existed

    def meta(self, index: str) -> dict:
        return self._concrete(index).meta()

    def count(self, index: str) -> int:
        return self._concrete(index).count()

    def layout(self, index: str) -> IndexLayout:
        return IndexLayout()

    def shards(self, index: str) -> list[dict]:
        """One "shard": the index's SQLite file, on this machine."""
        return [{"shard": 0, "primary": True, "state": "STARTED", "node": "local", "docs": self.count(index)}]

    def default_replicas(self) -> int:
        return 0

    def refresh(self, index: str) -> None:
        """Nothing to do: a committed batch is visible at once."""

    def create_plain(self, index: str, mappings: dict, settings: dict | None = None) -> None:
        raise UnsupportedError("the local backend has no mappings: it holds pins indexes only (create)")

    def add_field(self, index: str, field: str, spec: dict) -> None:
        """Nothing to map: a stored pin is JSON and holds any field (the index must exist)."""
        self._concrete(index)

    def stats(self, index: str, flush: bool = False) -> IndexStats:
        """The pins and the bytes of the index's files (no segments); `flush` checkpoints the write-ahead log."""
        local = self._concrete(index)
        return IndexStats(local.count(), local.size_bytes(checkpoint=flush))

    def node_info(self) -> NodeInfo:
        """The SQLite library's version; no Lucene, no JVM."""
        return NodeInfo(version=f"SQLite {sqlite3.sqlite_version}")

    def pause_refresh(self, index: str) -> None:
        """Nothing to pause: a committed batch is visible at once (the index must exist)."""
        self._concrete(index)

    def resume_refresh(self, index: str) -> None:
        """Nothing to resume (the index must exist)."""
        self._concrete(index)

    def force_merge(self, index: str, segments: int = 1) -> None:
        """SQLite's equivalent: VACUUM, which rewrites the database without its free pages."""
        self._concrete(index).compact()

    def indices(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.iterdir()
                      if path.name.startswith(prefix) and (path / DATABASE_FILE).is_file())

    def alias_target(self, alias: str) -> str | None:
        target = self._aliases().get(alias)
        if target is not None and self._index(target).exists():
            return target
        if "/" not in alias and (self.root / alias / DATABASE_FILE).is_file():
            return alias
        return None

    def point_alias(self, alias: str, index: str) -> None:
        if not self._index(index).exists():
            raise IndexNotFoundError(f"no local index {index!r} in {self.root}")
        if (self.root / alias / DATABASE_FILE).is_file():
            raise ValueError(f"{alias!r} is a local index, not an alias")
        self._write_aliases({**self._aliases(), alias: index})

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ALIASES_FILE
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(aliases, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(path)

    # ---- writing -------------------------------------------------------------------------------------------

    def write(self, index: str, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
              tokens: Sequence[Sequence[str]]) -> BatchResult:
        created, updated = self._concrete(index).upsert(pins, vectors, tokens)
        return BatchResult(created=created, updated=updated)

    def bulk_request(self, index: str, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
                     tokens: Sequence[Sequence[str]]) -> list[str]:
        raise UnsupportedError("the local backend sends no requests: it writes its SQLite file in process")

    def write_docs(self, index: str, docs: Iterable[tuple[str, dict]], batch: int = 500,
                   partial: bool = False) -> BatchResult:
        """Documents stored as pins without a vector (never first-stage candidates), `batch` per transaction;
        with `partial`, merged into the stored pins (their vectors and tokens kept)."""
        local, total, chunk = self._concrete(index), BatchResult(), []
        for pair in docs:
            chunk.append(pair)
            if len(chunk) >= batch:
                self._write_chunk(local, chunk, partial, total)
                chunk = []
        if chunk:
            self._write_chunk(local, chunk, partial, total)
        return total

    @staticmethod
    def _write_chunk(local: LocalIndex, chunk: list[tuple[str, dict]], partial: bool, total: BatchResult) -> None:
        if partial:
            updated, failed = local.patch(chunk)
            total.updated += updated
            total.failed.update(failed)
            return
        created, updated = local.upsert([{**doc, "id": doc_id} for doc_id, doc in chunk], [None] * len(chunk),
                                        [[] for _ in chunk])
        total.created += created
        total.updated += updated

    # ---- reading -------------------------------------------------------------------------------------------

    def count_matching(self, index: str, filters: Filters, exclude_ids: Sequence[str] = ()) -> int:
        return len(self._concrete(index).filtered_rows(filters, exclude_ids))

    def record_took(self) -> list[float]:
        self.took = []
        return self.took

    def _timed(self, began: float) -> None:
        """Record a search's in-process milliseconds since `began` when `record_took` asked for them."""
        if self.took is not None:
            self.took.append((time.perf_counter() - began) * 1000)

    def search(self, index: str, query: VectorQuery) -> list[SearchHit]:
        began = time.perf_counter()
        if query.exact:
            hits = self._concrete(index).exact_filtered(query.tokens, query.vector, query.k, query.filters,
                                                        query.exclude_ids)
        else:
            hits = self._concrete(index).search(list(query.tokens), query.vector, k=query.k, window=query.window,
                                                exclude_ids=query.exclude_ids, filters=query.filters)
        self._timed(began)
        return hits

    def first_stage(self, index: str, tokens: Sequence[str], size: int, filters: Filters = NO_FILTERS,
                    exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        began = time.perf_counter()
        local = self._concrete(index)
        candidates = local.first_stage(tokens, exclude_ids, filters)[:size]
        docs = local._docs([row for row, _, _ in candidates])
        wanted = set(tokens)
        hits = rank([SearchHit(id=pin_id, score=float(matched), cosine=None, first_stage_score=float(matched),
                               source=_public(docs[row]),
                               matched_tokens=sorted(wanted & set(docs[row].get("lsh_tokens", []))))
                     for row, pin_id, matched in candidates])
        self._timed(began)
        return hits

    def bm25(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS,
             exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        raise UnsupportedError("the local backend has no BM25 (use an engine: --engine opensearch or "
                               "elasticsearch)")

    def get(self, index: str, pin_id: str) -> tuple[dict, np.ndarray | None]:
        found = self._concrete(index).get(pin_id)
        if found is None:
            raise PinNotFoundError(f"pin {pin_id!r} is not in the local index {index!r}")
        doc, vector = found
        return _public(doc), vector

    def requests(self, index: str, query: VectorQuery) -> list[tuple[str, dict]]:
        raise UnsupportedError("the local backend sends no query DSL; `pintext dsl` prints an engine's")

    def bm25_request(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS) -> tuple[str, dict]:
        raise UnsupportedError("the local backend has no BM25")

    def search_body(self, index: str, body: dict) -> dict:
        raise UnsupportedError("the local backend has no query DSL: it answers PinText searches only (search)")


def _public(doc: dict) -> dict:
    """A stored doc as search returns it: without the tokens and the has-vector flag."""
    return {key: value for key, value in doc.items() if key not in ("lsh_tokens", HAS_VECTOR_KEY)}


def open_engine(options: Any) -> LocalEngine:
    """The local engine over `options.local_dir` (`pintext.serving.engines` calls this)."""
    return LocalEngine(options.local_dir)
