"""Learned centroid tokens: a token family fitted on the corpus vectors (k-means), the second family beside random
hyperplanes (`pintext.tokens.lsh`).

Random hyperplanes cut the sphere the same way whatever the data; real text vectors crowd into a few regions, so
most hyperplane buckets are empty and a few hold a large share of the pins. K-means centroids follow the data
(Faiss IVF and Elasticsearch's DiskBBQ use the same idea; here it is plain keyword tokens in an ordinary inverted
index):

- a codebook ("table") is `centroids` unit vectors fitted by spherical k-means on a sample of the corpus;
- a pin is stored under its `spill` nearest centroids of every codebook (spilling to a second centroid keeps the
  pins near a cell border findable from both sides);
- a query looks up its `1 + probes` nearest centroids of every codebook.

With one codebook the engine scores every pin holding a probed token exactly (`scoring: "exact_matches"`: one
`terms` filter inside the exact `knn_score` script, no rescore window); with several, pins are ranked by how many
of the query's tokens they hold and the top `window` rescored, like random hyperplanes (`scoring: "count"`).

The codebook travels inside the family's config (`to_dict`), stored in the index `_meta` like the LSH config, so
search rebuilds the exact family from the index alone: each centroid as int8 with a float32 scale (base64),
fingerprinted (sha256 of the config). 1,024 centroids of 256 dimensions are ~350 KB of `_meta`.

Tokens look like `c0_3f2` (codebook 0, centroid 0x3f2). Pure numpy; the fit uses scikit-learn's k-means.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from pintext.tokens.lsh import as_matrix

KMEANS_KIND = "kmeans"
DEFAULT_CENTROIDS = 1024
DEFAULT_SPILL = 2
DEFAULT_SEED = 0
# k-means iterations: the assignment a search sees changes little after ~20 Lloyd steps on text vectors.
DEFAULT_MAX_ITER = 25
# Pins k-means is fitted on (a uniform sample above it): ~100 pins per centroid is plenty to place them.
DEFAULT_FIT_SAMPLE = 100_000
EXACT_MATCHES = "exact_matches"  # every pin holding a probed token is scored exactly (one codebook)
COUNT = "count"  # pins ranked by tokens shared, the top `window` rescored (several codebooks)
# Bounds the [vectors, centroids] score block of one assignment step (elements).
_CHUNK_CELLS = 1 << 24


def scoring_of(tables: int) -> str:
    """How the engine ranks the pins `tables` codebooks match: every match exactly with one, by count with more."""
    return EXACT_MATCHES if tables == 1 else COUNT


@dataclass(frozen=True)
class CentroidTokens:
    """`tables` codebooks of `centroids` unit vectors each ([tables, centroids, dim]); see the module docstring."""

    codebooks: np.ndarray = field(repr=False)
    spill: int = DEFAULT_SPILL
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        books = np.asarray(self.codebooks, dtype=np.float32)
        if books.ndim != 3 or books.shape[0] < 1 or books.shape[1] < 2 or books.shape[2] < 1:
            raise ValueError(f"codebooks must be shaped [tables >= 1, centroids >= 2, dim >= 1], got {books.shape}")
        if not 1 <= self.spill <= books.shape[1]:
            raise ValueError(f"spill must be in 1..{books.shape[1]} (the centroids), got {self.spill}")
        object.__setattr__(self, "codebooks", _unit(books))

    @property
    def dim(self) -> int:
        return int(self.codebooks.shape[2])

    @property
    def tables(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def centroids(self) -> int:
        return int(self.codebooks.shape[1])

    @property
    def scoring(self) -> str:
        """How the engine ranks the pins the tokens match (see the module docstring)."""
        return scoring_of(self.tables)

    @property
    def max_probes(self) -> int:
        return self.centroids - 1

    # ---- tokens --------------------------------------------------------------------------------------------

    def nearest(self, vectors: np.ndarray, n: int) -> np.ndarray:
        """The `n` nearest centroids of every codebook per vector, nearest first (ties: lower id): [rows, tables, n]."""
        matrix = as_matrix(vectors, self.dim)
        n = min(int(n), self.centroids)
        found = np.empty((len(matrix), self.tables, n), dtype=np.int64)
        step = max(1, _CHUNK_CELLS // self.centroids)
        for table, book in enumerate(self.codebooks):
            for start in range(0, len(matrix), step):
                scores = matrix[start:start + step] @ book.T
                found[start:start + step, table] = _top_columns(scores, n)
        return found

    def tokens(self, vectors: np.ndarray) -> list[list[str]]:
        """The `spill` nearest centroids of every codebook: what a pin stores in `lsh_tokens`."""
        return self._format(self.nearest(vectors, self.spill))

    def query_tokens(self, vectors: np.ndarray, probes: int = 0) -> list[list[str]]:
        """The `1 + probes` nearest centroids of every codebook: what a query looks up."""
        if not 0 <= probes <= self.max_probes:
            raise ValueError(f"probes must be in 0..{self.max_probes} (centroids per codebook - 1), got {probes}")
        return self._format(self.nearest(vectors, 1 + probes))

    # ---- config --------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The config that rebuilds this family exactly (codebooks included, int8 + scale); has `kind`.

        A family rebuilt by `from_dict` gives back that very config (quantizing again could move a scale by one
        float ulp, and the index `_meta` is compared for equality)."""
        stored = self.__dict__.get("_config")
        if stored is not None:
            return json.loads(json.dumps(stored))
        scales = np.abs(self.codebooks).max(axis=2, keepdims=True) / 127.0
        scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
        quantized = np.rint(self.codebooks / scales).astype(np.int8)
        config = {"kind": KMEANS_KIND, "dim": self.dim, "tables": self.tables, "centroids": self.centroids,
                  "spill": self.spill, "seed": self.seed, "scoring": self.scoring,
                  "codebook": {"encoding": "int8+scale", "data": _b64(quantized), "scales": _b64(scales)}}
        config["fingerprint"] = config_fingerprint(config)
        return config

    @classmethod
    def from_dict(cls, config: dict) -> "CentroidTokens":
        """Rebuild from `to_dict()` output; refuses another kind, a damaged codebook or a wrong fingerprint."""
        if config.get("kind") != KMEANS_KIND:
            raise ValueError(f"not a {KMEANS_KIND} token config: kind {config.get('kind')!r}")
        missing = [key for key in ("dim", "tables", "centroids", "spill", "codebook", "fingerprint")
                   if key not in config]
        if missing:
            raise ValueError(f"{KMEANS_KIND} token config lacks {', '.join(missing)}")
        if config_fingerprint(config) != config["fingerprint"]:
            raise ValueError(f"{KMEANS_KIND} token config: the codebook does not match its fingerprint "
                             f"{str(config['fingerprint'])[:12]} (damaged or edited)")
        tables, centroids, dim = int(config["tables"]), int(config["centroids"]), int(config["dim"])
        book = config["codebook"]
        try:
            quantized = np.frombuffer(base64.b64decode(book["data"]), dtype=np.int8).reshape(tables, centroids, dim)
            scales = np.frombuffer(base64.b64decode(book["scales"]), dtype=np.float32).reshape(tables, centroids, 1)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{KMEANS_KIND} token config: unreadable codebook ({error})") from None
        family = cls(quantized.astype(np.float32) * scales, spill=int(config["spill"]),
                     seed=int(config.get("seed", DEFAULT_SEED)))
        object.__setattr__(family, "_config", json.loads(json.dumps(config)))
        return family

    def quantized(self) -> "CentroidTokens":
        """This family as `from_dict(to_dict())` rebuilds it: the int8 codebooks every index and query uses."""
        return CentroidTokens.from_dict(self.to_dict())

    # ---- helpers -------------------------------------------------------------------------------------------

    def _format(self, ids: np.ndarray) -> list[list[str]]:
        """[rows, tables, n] centroid ids -> one flat token list per row, codebook-major."""
        tables = np.arange(self.tables)[None, :, None]
        return self._names[np.broadcast_to(tables, ids.shape), ids].reshape(len(ids), -1).tolist()

    @property
    def _names(self) -> np.ndarray:
        """Every token string, [tables, centroids] (formatting per query would cost more than the lookup)."""
        cached = self.__dict__.get("_names_cache")
        if cached is None:
            width = len(f"{self.centroids - 1:x}")
            cached = np.array([[f"c{table}_{centroid:0{width}x}" for centroid in range(self.centroids)]
                               for table in range(self.tables)], dtype=object)
            object.__setattr__(self, "_names_cache", cached)
        return cached


def config_fingerprint(config: dict) -> str:
    """sha256 of the config without its fingerprint (canonical JSON)."""
    body = {key: value for key, value in config.items() if key != "fingerprint"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def fit_centroids(vectors: np.ndarray, centroids: int = DEFAULT_CENTROIDS, tables: int = 1,
                  spill: int = DEFAULT_SPILL, seed: int = DEFAULT_SEED, max_iter: int = DEFAULT_MAX_ITER,
                  sample: int = DEFAULT_FIT_SAMPLE) -> CentroidTokens:
    """Spherical k-means codebooks on (a uniform sample of) the pins' vectors; zero rows are left out.

    Each codebook is fitted on its own sample with its own seed, so several codebooks cut the space differently
    (independent "tables"). The result is quantized as the index stores it (`CentroidTokens.quantized`).
    """
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    unit = _unit(np.asarray(vectors, dtype=np.float32))
    unit = unit[np.linalg.norm(unit, axis=1) > 0]
    if len(unit) < 2:
        raise ValueError(f"fitting centroids needs at least 2 pins with a known word, got {len(unit)}")
    distinct = len(np.unique(unit, axis=0))
    if distinct < 2:
        raise ValueError(f"all {len(unit):,} pins with a known word have the same vector (identical texts), and "
                         "centroids need 2 different ones")
    centroids = max(2, min(int(centroids), distinct))
    books = []
    for table in range(tables):
        rng = np.random.default_rng(seed + table)
        rows = unit if len(unit) <= sample else unit[np.sort(rng.choice(len(unit), sample, replace=False))]
        with warnings.catch_warnings():
            # Repeated vectors can leave fewer distinct clusters than asked: the duplicates are dropped below.
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = KMeans(n_clusters=min(centroids, len(rows)), init="random", n_init=1, max_iter=max_iter,
                            random_state=seed + table,
                            algorithm="lloyd").fit(rows)
        book = _unit(fitted.cluster_centers_.astype(np.float32))
        _, first = np.unique(book, axis=0, return_index=True)
        books.append(book[np.sort(first)])
    width = min(len(book) for book in books)
    if width < 2:
        raise ValueError(f"the {len(unit):,} pins with a known word hold too few different vectors for 2 centroids")
    return CentroidTokens(np.stack([book[:width] for book in books]), spill=min(spill, width), seed=seed).quantized()


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0).astype(np.float32)


# Up to this many, the top columns are found by repeated argmax (a pin's 2 spill centroids, a query's probes):
# ~50x faster than argpartition over thousands of centroids, and argmax takes the lower column of a tie.
_ARGMAX_UP_TO = 32


def _top_columns(scores: np.ndarray, n: int) -> np.ndarray:
    """Columns of the n highest scores per row, best first, ties by the lower column. `scores` is overwritten."""
    if n <= _ARGMAX_UP_TO and n < scores.shape[1]:
        rows = np.arange(len(scores))
        found = np.empty((len(scores), n), dtype=np.int64)
        for rank in range(n):
            found[:, rank] = best = np.argmax(scores, axis=1)
            scores[rows, best] = -np.inf
        return found
    if n < scores.shape[1]:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        part = np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")
