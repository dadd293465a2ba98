"""A catalogue-like corpus built from real product titles, and the default path measured on it (issue 20).

The old 1M corpus (`pintext.bench.filtered.build_corpus`) is one real title plus two words of another: every pin
is a near-copy of one of ~9.9k products, so a query's exact top 10 is often ten near-twins of one product, which
no catalogue looks like and which hurts HNSW. Here a new title is composed from attribute slots of different real
titles of the same product type (issue 20, item 7):

- every real title is split into slots (`split_title`): brand (its first word), size (the words holding a number
  and the unit words beside them: "3/4 in. x 8 ft."), the product type (its last two core words: "Trim Kit"),
  the modifiers between them, the finish after " in " ("in Brushed Nickel") and the extras (" with ...", "(...)");
- a new title (`compose`) takes the product type of one real title, then brand, size, finish and extras each from
  another real title of the same product type (the type's last word), and its modifiers word by word from two more;
- the real titles are in the corpus as they are; composed titles are added (seeded, no exact duplicate) up to the
  size asked for.

Sources: Home Depot's 54,667 titles (`homedepot/products.csv`), Crowdflower's product titles and Best Buy's SKU names
(`../shared/data/real/`, never committed: the corpus is written under out/ or /tmp, only aggregate figures are).

`twin_figures` measures what the issue asks: over a sample of real queries, the share of exact top-10 lists with no
two near-twin pins (cosine >= one of TWIN_COSINES between two pins of the same list), how many pins of a list have a
twin in it, and the share of distinct lists.

`run` measures issue 20's "Done when" on one OpenSearch node, per corpus (the 54,667 real Home Depot titles, then
the catalogue or a seeded sample of it), same vectors, the held-out Home Depot queries, the Home Depot model:
PinText as served by default (`pintext.open(model, url=, index=).create_index(pins)` + `.ingest(pins)`, searched
through `.search(text, k=10)` with the index's own tuned window and probes), Lucene HNSW m 16 and m 32 at several
ef_search, the exact `knn_score` script; the store of each index against a plain bulk of the same pins and against
HNSW's; ingest against the plain bulk (alternated). Verdicts are computed from the figures.

    python -m pintext.bench.catalogue build --pins 1000000 --out out/catalogue/pins.jsonl
    python -m pintext.bench.catalogue twins --pins out/catalogue/pins.jsonl --old-recipe --out bench/catalogue
    python -m pintext.bench.catalogue run --sets homedepot,catalogue --catalogue-pins 100000 --out bench/catalogue
    python -m pintext.bench.catalogue render --out bench/catalogue      # again from results.json + reading.md
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pintext.quantize import UNRECORDED_VECTOR_TYPE

DEFAULT_SHARED = Path("../shared/data/real")
TWIN_COSINES = (0.9, 0.95, 0.98)  # two pins this close are near-twins (the same product with a word or two changed)
MIN_GROUP = 8  # a product type needs this many real titles to give composed ones (fewer: near-copies)
UNIT_WORDS = frozenset({"in.", "ft.", "x", "gal.", "cu.", "oz.", "lb.", "lbs.", "qt.", "sq.", "yd.", "mm", "cm",
                        "in", "ft", "gal", "oz", "lb", "watt", "amp", "volt", "pk", "pack", "btu", "gpf", "cfm"})
NUMBER = re.compile(r"\d")
FINISH = re.compile(r"\s+in\s+(?P<finish>[A-Z][^()]*?)(?=\s+with\s|\s*\(|\s*-\s*DISCONTINUED|$)")
EXTRA = re.compile(r"(?P<extra>\s+with\s.*|\s*\(.*\)\s*)$")
ID_WIDTH = 7
MAX_MISSES = 10_000  # composed titles in a row that were already made: the slots are exhausted


@dataclass(frozen=True)
class Slots:
    """A product title split into the attributes a new title is composed from (each a tuple of words)."""

    brand: tuple[str, ...]
    size: tuple[str, ...]
    modifiers: tuple[str, ...]
    kind: tuple[str, ...]  # the product type: the last two core words ("Trim Kit", "Microwave")
    finish: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def group(self) -> str:
        """The product type's last word, lowercased: titles sharing it trade attributes."""
        return self.kind[-1].lower() if self.kind else ""


def is_size_word(word: str) -> bool:
    return bool(NUMBER.search(word)) or word.lower() in UNIT_WORDS


def split_title(title: str) -> Slots:
    """The slots of one real title (pure; words kept as written)."""
    text = " ".join(title.replace("-DISCONTINUED", "").split())
    extra: tuple[str, ...] = ()
    found = EXTRA.search(text)
    if found and found.start() > 0:
        extra, text = tuple(found.group("extra").split()), text[:found.start()]
    finish: tuple[str, ...] = ()
    found = FINISH.search(text)
    if found:
        finish, text = tuple(found.group("finish").split()), text[:found.start()] + text[found.end():]
    words = text.split()
    if not words:
        return Slots((), (), (), (), finish, extra)
    brand, rest = (words[0],), words[1:]
    size = tuple(word for word in rest if is_size_word(word))
    core = [word for word in rest if not is_size_word(word) and word != "-"]
    kind = tuple(core[-2:])
    return Slots(brand, size, tuple(core[:-2]), kind, finish, extra)


def compose(slots: Sequence[Slots], rng: np.random.Generator) -> str:
    """A new title from seven real titles' `slots` (of one product type): the first's product type, the next
    four's brand, size, finish and extras, modifiers drawn word by word from the last two."""
    base, brand_of, size_of, finish_of, extra_of, mod_a, mod_b = slots
    pool = list(dict.fromkeys(mod_a.modifiers + mod_b.modifiers))
    count = min(len(pool), int(rng.integers(1, 4)) + len(base.modifiers) // 2) if pool else 0
    modifiers = [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))] if count else []
    size = size_of.size if size_of.size else base.size
    words = [*brand_of.brand, *size, *modifiers, *base.kind]
    finish = finish_of.finish or base.finish
    if finish:
        words += ["in", *finish]
    if extra_of.extra and rng.random() < 0.5:
        words += list(extra_of.extra)
    return " ".join(words)


def groups_of(titles: Sequence[str]) -> dict[str, list[Slots]]:
    """Real titles' slots by product type, only the types with at least MIN_GROUP titles."""
    grouped: dict[str, list[Slots]] = defaultdict(list)
    for title in titles:
        slots = split_title(title)
        if slots.kind:
            grouped[slots.group].append(slots)
    return {group: members for group, members in grouped.items() if len(members) >= MIN_GROUP}


def catalogue_titles(titles: Sequence[str], n: int, seed: int = 0) -> Iterator[str]:
    """`n` distinct titles: the distinct real `titles` first, then composed ones (seeded). A product type is drawn
    in proportion to its real titles, so the catalogue keeps the real mix of types."""
    real = list(dict.fromkeys(" ".join(t.split()) for t in titles if t.strip()))
    seen = set(real[:n])
    yield from real[:n]
    groups = groups_of(real)
    if not groups or len(seen) >= n:
        return
    names = sorted(groups)
    weights = np.asarray([len(groups[name]) for name in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    misses = 0
    drawn: list[int] = []
    while len(seen) < n:
        if not drawn:  # product types drawn a batch at a time (one draw each is slow at 1M)
            drawn = rng.choice(len(names), size=10_000, p=weights / weights.sum()).tolist()
        members = groups[names[drawn.pop()]]
        picked = [members[i] for i in rng.choice(len(members), size=7, replace=False)]
        title = compose(picked, rng)
        if title in seen:
            misses += 1
            if misses > MAX_MISSES:
                raise ValueError(f"could not compose {n:,} distinct titles from {len(real):,} real ones (stopped "
                                 f"at {len(seen):,}: {MAX_MISSES:,} duplicates in a row)")
            continue
        misses = 0
        seen.add(title)
        yield title


def catalogue_pins(titles: Sequence[str], n: int, seed: int = 0) -> Iterator[dict]:
    """The catalogue as pins: ids `c0000000`..., one title each."""
    for i, title in enumerate(catalogue_titles(titles, n, seed)):
        yield {"id": f"c{i:0{ID_WIDTH}d}", "title": title}


# ---- real titles (read from the shared folder, never committed) -----------------------------------------------


def read_homedepot(shared: Path) -> list[tuple[str, str]]:
    """(product_uid, title) of every Home Depot product."""
    with (shared / "homedepot" / "products.csv").open(encoding="utf-8", newline="") as handle:
        return [(row["product_uid"].strip(), row["title"].strip()) for row in csv.DictReader(handle)
                if row["title"].strip()]


def read_other_titles(shared: Path) -> list[str]:
    """Crowdflower's product titles and Best Buy's SKU names (where those files are)."""
    titles: dict[str, None] = {}
    judgments = shared / "crowdflower" / "judgments.csv"
    if judgments.is_file():
        with judgments.open(encoding="utf-8", newline="") as handle:
            titles.update((row["product_title"].strip(), None) for row in csv.DictReader(handle))
    names = shared / "bestbuy" / "sku_names.tsv"
    if names.is_file():
        for line in names.read_text(encoding="utf-8").splitlines():
            titles[line.partition("\t")[2].strip()] = None
    return [title for title in titles if title]


def source_titles(shared: Path) -> list[str]:
    """Every real title the catalogue is composed from: Home Depot's, then Crowdflower's and Best Buy's."""
    return [title for _, title in read_homedepot(shared)] + read_other_titles(shared)


def homedepot_pins(shared: Path) -> list[dict]:
    """The real Home Depot set as pins (ids `hd<product_uid>`, as `pintext.bench.realdata` writes them)."""
    return [{"id": f"hd{uid}", "title": title} for uid, title in read_homedepot(shared)]


def read_queries(qrels: Path) -> list[str]:
    """The distinct queries of a qrels CSV (`query` column), in file order."""
    with qrels.open(encoding="utf-8", newline="") as handle:
        return list(dict.fromkeys(row["query"].strip() for row in csv.DictReader(handle) if row["query"].strip()))


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    pins: list[dict] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(pins) >= limit:
                break
            pins.append(json.loads(line))
    return pins


# ---- near-twins in the exact top 10 (pure numpy) ---------------------------------------------------------------


def twin_figures(unit: np.ndarray, top: np.ndarray, thresholds: Sequence[float] = TWIN_COSINES) -> dict:
    """Over exact top-k lists (`top`: [q, k] rows of `unit`), per near-twin threshold (two pins of a list at cosine
    >= it): the share of lists with no near-twin pair and the mean share of a list's pins that have a twin in it;
    and the share of distinct lists among the queries'."""
    by_cosine = {}
    for threshold in thresholds:
        free, twinned = [], []
        for rows in top:
            vectors = unit[rows]
            close = vectors @ vectors.T >= threshold
            np.fill_diagonal(close, False)
            has_twin = close.any(axis=1)
            free.append(not has_twin.any())
            twinned.append(float(has_twin.mean()))
        by_cosine[f"{threshold:g}"] = {"lists_without_twins": float(np.mean(free)),
                                       "pins_with_a_twin": float(np.mean(twinned))}
    distinct_lists = len({tuple(sorted(rows.tolist())) for rows in top})
    return {"queries": int(len(top)), "by_cosine": by_cosine, "distinct_lists": distinct_lists / max(1, len(top))}


def embed(encoder: Any, pins: Sequence[dict], chunk: int = 100_000) -> np.ndarray:
    """Unit pin vectors as ingest makes them (`pintext.pin_vectors`), a chunk at a time."""
    from pintext.pin_vectors import pin_vectors, unit_rows

    parts = [unit_rows(pin_vectors(encoder, pins[start:start + chunk])).astype(np.float32)
             for start in range(0, len(pins), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def query_units(encoder: Any, texts: Sequence[str], limit: int, seed: int = 1) -> tuple[list[str], np.ndarray]:
    """Up to `limit` of the query texts (seeded order) with at least one known word, and their unit vectors,
    encoded as a served search encodes them (`Encoder.encode_query`)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    kept, vectors = [], []
    for i in order:
        vector, known = encoder.encode_query(texts[i])
        norm = float(np.linalg.norm(vector))
        if known and norm > 0:
            kept.append(texts[i])
            vectors.append(np.asarray(vector, dtype=np.float32) / norm)
        if len(kept) >= limit:
            break
    return kept, np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)


def measure_twins(encoder: Any, pins: Sequence[dict], queries: np.ndarray, k: int = 10) -> dict:
    from pintext.tokens.recall import exact_top_k

    unit = embed(encoder, pins)
    kept = np.flatnonzero(np.linalg.norm(unit, axis=1) > 0.5)
    top = kept[exact_top_k(unit[kept], queries, k)]
    return {"pins": len(pins), **twin_figures(unit, top)}


# ---- the measurement on the node ------------------------------------------------------------------------------

K = 10
EF_SEARCH = (100, 200, 400, 1000)
HNSW_MS = (16, 32)
PINTEXT_NAME = "bench-catalogue"  # the name users search (an alias over the model's index)
PLAIN_INDEX = "bench-catalogue-plain"
SAME_RECALL = 0.005  # an HNSW setting this close below PinText's recall counts as "the same recall"
GOAL_RECALL = 0.95
VECTOR_OVERHEAD = 1.25  # issue 20: store per pin <= plain bulk's + 1.25 x the vector as the exact scorer reads it
INGEST_SHARE = 0.5  # issue 20: `pintext ingest` >= 0.5x a plain bulk


def hnsw_index(m: int) -> str:
    return f"bench-catalogue-hnsw-m{m}"


HNSW_PINS_INDEX = "bench-catalogue-hnsw-m16-pins"  # HNSW m 16 holding the whole pins, as a user's k-NN index would


def build_hnsw_pins_index(engine: Any, client: Any, pins: Sequence[dict], unit: np.ndarray, vector_type: str) -> dict:
    """The store comparator a user would build: the same pin documents as the plain bulk (the PinText mapping's
    text and keyword fields) plus an HNSW m 16 vector field of the same vectors; no tokens. The bare HNSW index
    (vector and one keyword) holds none of the pins' text, which the PinText index does."""
    from pintext.bench.filtered import HNSW_BATCH, finish_index, hnsw_body
    from pintext.bench.harness import stopwatch
    from pintext.quantize import served_vectors
    from pintext.queries import TOKENS_FIELD, VECTOR_FIELD

    plain = next(iter(client.indices.get_mapping(index=PLAIN_INDEX).values()))["mappings"]
    body = hnsw_body(unit.shape[1], 16, vector_type)
    fields = {name: field for name, field in plain["properties"].items() if name not in (TOKENS_FIELD, VECTOR_FIELD)}
    mappings = {**body["mappings"], "properties": {**fields, VECTOR_FIELD: body["mappings"]["properties"]["vector"]}}
    engine.delete(HNSW_PINS_INDEX)
    engine.create_plain(HNSW_PINS_INDEX, mappings, body["settings"])
    vectors = served_vectors(unit, vector_type)
    with stopwatch() as writing:
        outcome = engine.write_docs(HNSW_PINS_INDEX, ((pin["id"], {**pin, VECTOR_FIELD: vector})
                                                      for pin, vector in zip(pins, vectors)), batch=HNSW_BATCH)
    if outcome.failed:
        raise RuntimeError(f"bulk failed: {list(outcome.failed.items())[:3]}")
    return {"write_seconds": writing["seconds"], **finish_index(engine, HNSW_PINS_INDEX)}


@dataclass
class Truth:
    """The exact answers every method is scored against (numpy, the same unit vectors every index holds)."""

    ids: list[str]  # pin id per row (pins with a vector only)
    unit: np.ndarray
    queries: np.ndarray
    kth: np.ndarray  # the exact 10th best cosine per query
    served: list[list[str]]  # the exact served ranking: exact cosine top MATCH_DEPTH re-ranked by the signal

    def cosine_recall(self, found: Sequence[Sequence[str]]) -> float:
        """Tie-aware recall@10 against exact cosine."""
        from pintext.tokens.recall import tie_aware_recall

        row_of = {pin_id: row for row, pin_id in enumerate(self.ids)}
        cosines = np.full((len(found), K), -np.inf)
        for query, hits in enumerate(found):
            for slot, pin_id in enumerate(list(hits)[:K]):
                if pin_id in row_of:
                    cosines[query, slot] = float(self.unit[row_of[pin_id]] @ self.queries[query])
        return float(tie_aware_recall(cosines, self.kth, K).mean())

    def served_recall(self, found: Sequence[Sequence[str]]) -> float:
        """recall@10 against the exact served ranking (same signal, every pin scored)."""
        return float(np.mean([len(set(hits[:K]) & set(want[:K])) / K for hits, want in zip(found, self.served)]))


def exact_truth(pins: Sequence[dict], unit: np.ndarray, texts: Sequence[str], queries: np.ndarray,
                match: Any) -> Truth:
    from pintext.exact_match import match_depth, rerank_ids
    from pintext.schemas import pin_text
    from pintext.tokens.recall import exact_top_k, kth_best

    depth = exact_top_k(unit, queries, match_depth(K))
    ids = [pin["id"] for pin in pins]
    served = []
    for text, query, rows in zip(texts, queries, depth):
        ranked = [(ids[row], float(unit[row] @ query)) for row in rows]
        pin_texts = {ids[row]: pin_text(pins[row]) for row in rows}
        served.append([pin_id for pin_id, _ in rerank_ids(ranked, pin_texts, text, match)[:K]])
    return Truth(ids, unit, queries, kth_best(unit, queries, depth[:, :K]), served)


def timed_passes(methods: Sequence[tuple[str, str, Callable]], items: Sequence[tuple[str, np.ndarray]], passes: int,
                 log: Callable[[str], None]) -> list[dict]:
    """Every method over every query, `passes` times round-robin (a warm-up of 10 queries first); per method the
    hits of the first pass and each pass's p50/p95 (client wall time, sequential)."""
    from pintext.bench.harness import percentiles

    rows: list[dict[str, Any]] = [{"method": method, "setting": setting, "p50s": [], "p95s": [], "found": None}
                                  for method, setting, _ in methods]
    for number in range(passes):
        for row, (_, _, run) in zip(rows, methods):
            for item in items[:10]:
                run(item)
            millis, found = [], []
            for item in items:
                began = time.perf_counter()
                found.append(run(item))
                millis.append((time.perf_counter() - began) * 1000)
            latency = percentiles(millis, (50, 95))
            row["p50s"].append(latency["p50"])
            row["p95s"].append(latency["p95"])
            row["found"] = row["found"] or found
        log(f"pass {number + 1}/{passes} done")
    for row in rows:
        row["p50_ms"], row["p95_ms"] = float(np.median(row["p50s"])), float(np.median(row["p95s"]))
    return rows


def served_runner(service: Any, **choices: Any) -> Callable:
    def run(item: tuple[str, np.ndarray]) -> list[str]:
        return [hit.id for hit in service.search(item[0], k=K, **choices)]
    return run


def body_runner(engine: Any, index: str, body_of: Any) -> Callable:
    def run(item: tuple[str, np.ndarray]) -> list[str]:
        response = engine.search_body(index, body_of(item[1]))
        return [hit["_id"] for hit in response["hits"]["hits"]]
    return run


def search_methods(service: Any, engine: Any, concrete: str, hnsw_ok: Sequence[int],
                   hnsw_vectors: str) -> list[tuple]:
    from functools import partial

    from pintext.bench.filtered import exact_body, knn_body

    methods: list[tuple] = [
        ("PinText", "as served (default flags: the index's window and probes, the model's word-match signal)",
         served_runner(service)),
        ("PinText", "as served, cosine only (match_weight 0)", served_runner(service, match_weight=0.0)),
        ("exact script", "script_score knn_score over every pin",
         body_runner(engine, concrete, partial(exact_body, board=None, vector_type=hnsw_vectors)))]
    for m in hnsw_ok:
        methods += [("HNSW", f"m {m}, ef_search {ef}",
                     body_runner(engine, hnsw_index(m), partial(knn_body, board=None, k=K, ef_search=ef,
                                                                  vector_type=hnsw_vectors)))
                    for ef in EF_SEARCH]
    return methods


def plain_bulk(engine: Any, dim: int, meta: dict, pins: Sequence[dict]) -> dict:
    """The baseline of ingest and store: the same pins, same mapping, without vector or tokens, through the
    engine's plain bulk (500 a request, default refresh)."""
    from pintext.bench.harness import stopwatch

    engine.delete(PLAIN_INDEX)
    engine.create(PLAIN_INDEX, dim, meta)
    with stopwatch() as writing:
        outcome = engine.write_docs(PLAIN_INDEX, ((pin["id"], pin) for pin in pins), batch=500)
    if outcome.failed:
        raise RuntimeError(f"pins failed to index: {list(outcome.failed.items())[:3]}")
    return {"seconds": writing["seconds"], "docs_per_s": len(pins) / writing["seconds"]}


WARM_UP_INDEX = "bench-catalogue-warm-up"
WARM_UP_PINS = 20_000


def warm_up(engine: Any, dim: int, pins: Sequence[dict], unit: np.ndarray) -> None:
    """Bulk some pins with one-byte vectors into a scratch index, untimed: a node started for the run has a cold
    JVM, and whatever is timed first (PinText's ingest) would pay for its warm-up (54,667 real titles on a fresh
    node: 3,156-3,418 docs/s; 20,000 of them on a warm node: 4,800-6,500)."""
    from pintext.quantize import INT8, served_vectors
    from pintext.serving.meta import index_meta
    from pintext.tokens.lsh import RandomHyperplaneLSH

    head = min(len(pins), WARM_UP_PINS)
    meta = index_meta("warm-up", dim, RandomHyperplaneLSH(dim=dim, tables=1, bits=1), vector_type=INT8)
    engine.delete(WARM_UP_INDEX)
    engine.create(WARM_UP_INDEX, dim, meta)
    vectors = served_vectors(unit[:head], INT8)
    engine.write_docs(WARM_UP_INDEX, ((pin["id"], {**pin, "vector": vector}) for pin, vector in zip(pins, vectors)))
    engine.delete(WARM_UP_INDEX)


def product_ingest(service: Any, pins_file: Path, pins: int) -> dict:
    """`pintext.open(...).create_index(pins_file)` (tokens tuned on the file, as ingest does for a new index), then
    `.ingest(pins_file)` with default options: docs/s of the ingest alone."""
    from pintext.bench.harness import stopwatch

    service.delete(force=True)
    with stopwatch() as tuning:
        service.create_index(pins_file)
    with stopwatch() as writing:
        summary = service.ingest(pins_file)
    if summary["indexed"] != pins:
        raise RuntimeError(f"ingest indexed {summary['indexed']} of {pins} pins ({summary['rejected']} rejected)")
    return {"tune_seconds": tuning["seconds"], "seconds": writing["seconds"], "docs_per_s": pins / writing["seconds"],
            "reported_docs_per_s": summary["docs_per_second"], "without_vector": summary["indexed_without_vector"]}


def vector_bytes(client: Any, index: str, dim: int) -> tuple[int, str]:
    """Bytes a pin's vector takes as the exact scorer reads it, from the index mapping's data type."""
    mapping = client.indices.get_mapping(index=index)
    field = next(iter(mapping.values()))["mappings"]["properties"].get("vector", {})
    data_type = str(field.get("data_type") or field.get("element_type") or "float").lower()
    return dim * (1 if data_type in ("byte", "int8") else 4), data_type


def index_mapping_summary(client: Any, index: str) -> dict:
    """What the PinText index stores (for the report): its settings' knn flag, _source excludes, vector field."""
    settings = next(iter(client.indices.get_settings(index=index).values()))["settings"]["index"]
    mapping = next(iter(client.indices.get_mapping(index=index).values()))["mappings"]
    meta = mapping.get("_meta") or {}
    tokens = meta.get("tokens") or meta.get("lsh") or {}  # indexes written before 'tokens' say 'lsh'
    return {"knn": settings.get("knn"), "source": mapping.get("_source", {}),
            "vector": mapping.get("properties", {}).get("vector"),
            "meta_tokens": {key: value for key, value in tokens.items() if key not in ("codebook", "fingerprint")}}


def final_stats(engine: Any, indexes: Sequence[str]) -> dict:
    """Store size and docs of each index, read after the node's store-size cache (10 s) has expired."""
    time.sleep(11)  # Lucene caches the store size for 10 s: a size read at once can predate the force-merge
    out = {}
    for index in indexes:
        stats = engine.stats(index, flush=True)
        out[index] = {"docs": stats.docs, "size_bytes": stats.size_bytes, "segments": stats.segments}
    return out


def with_vectors(pins: Sequence[dict], unit: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """The rows of the pins that have a vector (a unit one; a pin with no known word has none), and those pins, each
    on the one board every index of the run holds."""
    kept = np.flatnonzero(np.linalg.norm(unit, axis=1) > 0.5)
    return kept, [{**pins[int(row)], "board": "all"} for row in kept]


def measure_set(label: str, pins: Sequence[dict], model: Path, query_texts: Sequence[str], args: argparse.Namespace,
                log: Callable[[str], None]) -> dict:
    """Every figure of one corpus on the node (see the module docstring); the indexes are deleted at the end."""
    from pintext import open as open_pintext
    from pintext.bench.filtered import Corpus, build_hnsw_index, finish_index
    from pintext.bench.harness import load_average, stopwatch
    from pintext.bench.node import open_node
    from pintext.encoder import Encoder
    from pintext.exact_match import ExactMatch
    from pintext.serving.opensearch import OpenSearchEngine
    from pintext.tokens.recall import exact_top_k

    began, load_before = time.perf_counter(), load_average()
    encoder = Encoder.load(model)
    texts, queries = query_units(encoder, query_texts, args.queries)
    with stopwatch() as embedding:
        unit = embed(encoder, pins)
    kept, kept_pins = with_vectors(pins, unit)
    truth = exact_truth(kept_pins, unit[kept], texts, queries, ExactMatch.load(model).bound(encoder.word_vectors))
    twins = twin_figures(unit[kept], exact_top_k(unit[kept], queries, K))
    log(f"{label}: {len(pins):,} pins ({len(kept):,} with a vector), {len(texts)} queries, embedded in "
        f"{embedding['seconds']:.0f} s; near-twins: {twins['by_cosine']}")
    pins_file = args.work / f"{label}-pins.jsonl"
    write_jsonl(pins_file, pins)
    node = open_node()
    engine = OpenSearchEngine(node.client)
    service = open_pintext(model, url=node.url, index=PINTEXT_NAME)
    corpus = Corpus(kept_pins, unit[kept], np.asarray(["all"] * len(kept)),
                    {pin["id"]: row for row, pin in enumerate(kept_pins)})
    ingests, plains, hnsw, hnsw_ok = [], [], {}, []
    try:
        warm_up(engine, encoder.dim, kept_pins, unit[kept])
        for repeat in range(args.repeats):  # alternated, so both see the same load
            ingests.append(product_ingest(service, pins_file, len(pins)))
            concrete = service.searcher().index
            meta = engine.meta(concrete)
            plains.append(plain_bulk(engine, encoder.dim, meta, pins))
            log(f"  ingest {ingests[-1]['docs_per_s']:,.0f} docs/s (tuning {ingests[-1]['tune_seconds']:.0f} s), "
                f"plain bulk {plains[-1]['docs_per_s']:,.0f} docs/s")
        plains.append(plain_bulk(engine, encoder.dim, meta, pins))  # the baseline once more: two samples at least
        merged = {concrete: finish_index(engine, concrete), PLAIN_INDEX: finish_index(engine, PLAIN_INDEX)}
        hnsw_vectors = meta.get("vector_type", UNRECORDED_VECTOR_TYPE)  # HNSW gets the same vectors PinText holds
        for m in args.hnsw_m:
            try:
                hnsw[m] = build_hnsw_index(engine, corpus, hnsw_index(m), m, hnsw_vectors)
                hnsw_ok.append(m)
                log(f"  HNSW m {m}: written {hnsw[m]['write_seconds']:.0f} s, merged {hnsw[m]['merge_seconds']:.0f} s")
            except Exception as error:  # noqa: BLE001 - reported, the rest still runs
                hnsw[m] = {"error": str(error)}
                log(f"  HNSW m {m} failed: {error}")
        if args.hnsw_pins:
            hnsw["pins"] = build_hnsw_pins_index(engine, node.client, kept_pins, unit[kept], hnsw_vectors)
            log(f"  HNSW m 16 with the pins: written {hnsw['pins']['write_seconds']:.0f} s")
        pins_comparator = [HNSW_PINS_INDEX] if args.hnsw_pins else []
        stored = final_stats(engine, [concrete, PLAIN_INDEX, *(hnsw_index(m) for m in hnsw_ok), *pins_comparator])
        scorer_bytes, data_type = vector_bytes(node.client, concrete, encoder.dim)
        described = index_mapping_summary(node.client, concrete)
        serving = service.searcher().serving
        rows = timed_passes(search_methods(service, engine, concrete, hnsw_ok, hnsw_vectors), list(zip(texts, queries)),
                            args.passes, log)
    finally:
        if not args.keep:
            service.delete(force=True)
            for index in (PLAIN_INDEX, HNSW_PINS_INDEX, *(hnsw_index(m) for m in args.hnsw_m)):
                engine.delete(index)
        node.close()
    for row in rows:
        found = row.pop("found")
        row["recall"] = truth.cosine_recall(found)
        row["recall_vs_served_exact"] = truth.served_recall(found)
    return {"label": label, "pins": len(pins), "with_vector": int(len(kept)), "queries": len(texts),
            "dim": encoder.dim, "twins": twins, "embed_seconds": embedding["seconds"], "ingest": ingests,
            "plain": plains, "merged": merged, "hnsw": {str(m): info for m, info in hnsw.items()},
            "stored": stored, "pintext_index": concrete, "vector_bytes": scorer_bytes, "vector_type": data_type,
            "hnsw_vector_type": hnsw_vectors,
            "index_shape": described, "serving": {"window": serving.window, "probes": serving.probes},
            "results": rows, "seconds": time.perf_counter() - began, "load_before": load_before,
            "load_after": load_average(), "node": {"version": node.version, "plugins": node.plugins}}


# ---- verdicts and the report ----------------------------------------------------------------------------------


def row_of(data: dict, method: str, prefix: str) -> dict | None:
    return next((r for r in data["results"] if r["method"] == method and r["setting"].startswith(prefix)), None)


def fastest_hnsw(data: dict, recall: float, key: str = "recall") -> dict | None:
    """The fastest HNSW setting (any m) reaching `recall` (within SAME_RECALL), else None."""
    peers = [r for r in data["results"] if r["method"] == "HNSW" and r[key] >= recall - SAME_RECALL]
    return min(peers, key=lambda r: r["p50_ms"], default=None)


def median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def verdicts(data: dict) -> list[dict]:
    """Issue 20's targets for one corpus, each met or missed and by how much (computed, never hand-written)."""
    out = []
    served = row_of(data, "PinText", "as served (default")
    cosine = row_of(data, "PinText", "as served, cosine only")
    for row, key, what in ((served, "recall_vs_served_exact", "PinText as served (recall vs the exact served "
                            "ranking: exact cosine top 100 re-ranked by the same signal)"),
                           (cosine, "recall", "PinText as served, cosine only (recall vs exact cosine)")):
        if row is None:
            continue
        recall = row[key]
        out.append({"target": f"{what}: recall@10 >= {GOAL_RECALL}", "measured": f"{recall:.3f}",
                    "met": recall >= GOAL_RECALL, "by": f"{recall - GOAL_RECALL:+.3f}"})
        rival = fastest_hnsw(data, row[key])
        if rival is None:
            best = max((r for r in data["results"] if r["method"] == "HNSW"), key=lambda r: r["recall"], default=None)
            out.append({"target": f"{what}: p50 <= the fastest HNSW at the same recall",
                        "measured": f"{row['p50_ms']:.2f} ms; no HNSW setting measured reaches {recall:.3f}"
                        + (f" (best {best['recall']:.3f}, {best['setting']}, {best['p50_ms']:.2f} ms)" if best else ""),
                        "met": True, "by": "-"})
        else:
            times = row["p50_ms"] / rival["p50_ms"]
            out.append({"target": f"{what}: p50 <= the fastest HNSW at the same recall",
                        "measured": f"{row['p50_ms']:.2f} ms vs {rival['setting']} ({rival['recall']:.3f}) "
                                    f"{rival['p50_ms']:.2f} ms = {times:.2f}x",
                        "met": times <= 1.0, "by": f"{times:.2f}x HNSW's p50"})
    stored, plain_size = data["stored"], data["stored"][PLAIN_INDEX]["size_bytes"]
    pintext, docs = stored[data["pintext_index"]]["size_bytes"], data["stored"][data["pintext_index"]]["docs"]
    per_pin, plain_per_pin = pintext / docs, plain_size / stored[PLAIN_INDEX]["docs"]
    allowed = plain_per_pin + VECTOR_OVERHEAD * data["vector_bytes"]
    out.append({"target": f"store per pin <= plain bulk's + {VECTOR_OVERHEAD} x the vector as scored "
                          f"({data['vector_bytes']:,} B, {data['vector_type']})",
                "measured": f"{per_pin:,.0f} B vs allowed {allowed:,.0f} B (plain {plain_per_pin:,.0f} B)",
                "met": per_pin <= allowed, "by": f"{per_pin / allowed:.2f}x the allowance"})
    hnsw16 = stored.get(hnsw_index(16))
    if hnsw16:
        times = pintext / hnsw16["size_bytes"]
        out.append({"target": "store <= the engine's own HNSW index of the same vectors (m 16)",
                    "measured": f"{pintext / 2**20:,.1f} MiB vs {hnsw16['size_bytes'] / 2**20:,.1f} MiB",
                    "met": times <= 1.0, "by": f"{times:.2f}x"})
    with_pins = stored.get(HNSW_PINS_INDEX)
    if with_pins:
        times = pintext / with_pins["size_bytes"]
        out.append({"target": "store <= an HNSW m 16 index of the same pins (their fields + the same vectors)",
                    "measured": f"{pintext / 2**20:,.1f} MiB vs {with_pins['size_bytes'] / 2**20:,.1f} MiB",
                    "met": times <= 1.0, "by": f"{times:.2f}x"})
    share = median([r["docs_per_s"] for r in data["ingest"]]) / median([r["docs_per_s"] for r in data["plain"]])
    out.append({"target": f"`pintext ingest` >= {INGEST_SHARE}x a plain bulk",
                "measured": f"{median([r['docs_per_s'] for r in data['ingest']]):,.0f} vs "
                            f"{median([r['docs_per_s'] for r in data['plain']]):,.0f} docs/s = {share:.2f}x",
                "met": share >= INGEST_SHARE, "by": f"{share / INGEST_SHARE:.2f}x the target"})
    return out


def store_made_of(data: dict) -> str:
    stored, dim_bytes = data["stored"], data["vector_bytes"]
    pintext, plain = stored[data["pintext_index"]], stored[PLAIN_INDEX]
    over = pintext["size_bytes"] - plain["size_bytes"]
    vectors = pintext["docs"] * dim_bytes
    return (f"Of the PinText index's {over / 2**20:,.1f} MiB over the plain bulk, the vectors as the exact scorer "
            f"reads them ({dim_bytes:,} B a pin, uncompressed) are {vectors / 2**20:,.1f} MiB; the other "
            f"{(over - vectors) / 2**20:,.1f} MiB ({(over - vectors) / pintext['docs']:,.0f} B a pin) are the tokens "
            "and whatever copy of the vector `_source` keeps (index shape below).")


def method_rows(data: dict) -> list[dict]:
    exact = row_of(data, "exact script", "")
    base = exact["p50_ms"] if exact else float("nan")
    return [{"method": r["method"], "setting": r["setting"], "recall@10 vs exact cosine": f"{r['recall']:.3f}",
             "recall@10 vs exact served": f"{r['recall_vs_served_exact']:.3f}", "p50 ms": f"{r['p50_ms']:.2f}",
             "p95 ms": f"{r['p95_ms']:.2f}", "p50 of each pass": " / ".join(f"{v:.1f}" for v in r["p50s"]),
             "speed-up vs exact (p50)": f"{base / r['p50_ms']:.1f}x"} for r in data["results"]]


def store_rows(data: dict) -> list[dict]:
    plain = data["stored"][PLAIN_INDEX]
    plain_per_pin = plain["size_bytes"] / plain["docs"]
    hnsw16 = data["stored"].get(hnsw_index(16), {}).get("size_bytes")
    return [{"index": name, "docs": f"{info['docs']:,}", "store": f"{info['size_bytes'] / 2**20:,.1f} MiB",
             "bytes a pin": f"{info['size_bytes'] / info['docs']:,.0f}",
             "x plain bulk": f"{info['size_bytes'] / info['docs'] / plain_per_pin:.2f}x",
             "x HNSW m 16": f"{info['size_bytes'] / hnsw16:.2f}x" if hnsw16 else "-"}
            for name, info in data["stored"].items()]


def ingest_rows(data: dict) -> list[dict]:
    """Each write in the order it ran, against the median plain bulk."""
    baseline = median([r["docs_per_s"] for r in data["plain"]])
    rows = []
    for i, plain in enumerate(data["plain"]):
        if i < len(data["ingest"]):
            ingest = data["ingest"][i]
            with_tuning = data["pins"] / (ingest["seconds"] + ingest["tune_seconds"])
            rows.append({"write": f"`.ingest()` #{i + 1}", "docs/s": f"{ingest['docs_per_s']:,.0f}",
                         "x median plain bulk": f"{ingest['docs_per_s'] / baseline:.2f}x",
                         "note": f"tuning first (`.create_index(pins)`) {ingest['tune_seconds']:.0f} s: with it "
                                 f"{with_tuning:,.0f} docs/s, {with_tuning / baseline:.2f}x"})
        rows.append({"write": f"plain bulk #{i + 1}", "docs/s": f"{plain['docs_per_s']:,.0f}",
                     "x median plain bulk": f"{plain['docs_per_s'] / baseline:.2f}x", "note": ""})
    return rows


def twin_line(label: str, twins: dict) -> str:
    shares = "; ".join(f"at cosine >= {threshold}: {figures['lists_without_twins']:.1%} of the lists hold no twin "
                       f"pair, {figures['pins_with_a_twin']:.1%} of a list's pins have a twin in it"
                       for threshold, figures in twins["by_cosine"].items())
    return (f"- {label}: exact top 10 of {twins['queries']} real queries; {shares}; {twins['distinct_lists']:.1%} of "
            "the lists differ from every other query's.")


def render_set(data: dict) -> list[str]:
    from pintext.bench.harness import markdown_table

    shape = data["index_shape"]
    lines = [f"## {data['title']}", "",
             f"`{data.get('command', '')}`, {data.get('started_at', '')}, code `{data.get('commit', '')}` "
             f"(+ uncommitted: {data.get('dirty') or 'none'}).", "",
             f"{data['pins']:,} pins ({data['with_vector']:,} with a vector), {data['dim']}-d, {data['queries']} real "
             f"queries; {data['seconds'] / 60:.1f} minutes; load average {data['load_before']} before, "
             f"{data['load_after']} after. PinText index `{data['pintext_index']}` serves window "
             f"{data['serving']['window']}, probes {data['serving']['probes']} (its own tuned defaults); vectors "
             f"{data.get('vector_type', 'float')}, HNSW on {data.get('hnsw_vector_type', 'float32')} vectors.", "",
             twin_line("Near-twins", data["twins"]), "",
             "### Targets", "",
             markdown_table([{"target": v["target"], "measured": v["measured"], "met": "yes" if v["met"] else "NO",
                              "by": v["by"]} for v in data["verdicts"]]), "",
             "### Queries", "",
             markdown_table(method_rows(data)), "",
             "### Store (one shard, force-merged)", "",
             markdown_table(store_rows(data)), "",
             store_made_of(data), "",
             f"Index shape: `index.knn` {shape.get('knn')}, `_source` {json.dumps(shape.get('source'))}, vector "
             f"field {json.dumps(shape.get('vector'))}, tokens {json.dumps(shape.get('meta_tokens'))}.", "",
             "### Ingest (then the plain bulk of the same pins, fresh index each time; rates exclude tuning)", "",
             markdown_table(ingest_rows(data)), ""]
    return lines


def render_report(report: dict) -> str:
    machine = report["machine"]
    lines = ["# Issue 20's benchmark: the default path on real Home Depot titles and a catalogue-like corpus", "",
             f"Generated by `bench/catalogue.py` ({report['seconds'] / 60:.1f} minutes of runs; the command, time and "
             "code of each corpus under its heading); raw figures in `results.json`.", "",
             f"- machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, "
             f"{machine.get('memory', '?')}, shared with other agents' work (load averages per corpus below)",
             f"- node: OpenSearch {report['node']['version']}, {', '.join(report['node']['plugins'])}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             f"- model: `{report['model']}`; queries: the held-out Home Depot queries (`{report['queries_file']}`, "
             "`query` column; never committed), those with a known word, in a seeded order",
             "",
             "Every method runs the same queries, sequentially, client wall time (PinText's includes encoding the "
             "query text, as served), each method over all queries once per pass, passes round-robin; p50/p95 are "
             "the median over passes. recall@10 vs exact cosine is tie-aware, against numpy over the same unit "
             "vectors every index holds; recall@10 vs exact served is against the served ranking computed exactly "
             "(exact cosine top 100, re-ranked by the model's word-match signal, as `search` does on its hits). "
             "HNSW: Lucene engine, ef_construction 100, its own index holding the vector and one keyword, on the "
             "same vectors as the PinText index (float32 unit vectors with innerproduct, or, for a PinText index of "
             "one-byte vectors, the same int8 values, `data_type: byte`, cosine; each corpus says which).", ""]
    order = ["homedepot", "catalogue"]
    for data in sorted(report["sets"], key=lambda run: order.index(run["label"]) if run["label"] in order else 9):
        lines += render_set(data)
    if report.get("twins"):
        lines += ["## Near-twins in the exact top 10 (numpy, no node)", ""]
        lines += [twin_line(label, twins) for label, twins in report["twins"].items()]
        lines.append("")
    lines += ["## Reading", "", *report.get("reading", ["_(not written)_"]), ""]
    return "\n".join(lines)


# ---- command line ----------------------------------------------------------------------------------------------


DEFAULT_MODEL = Path("/tmp/real-eval-work/homedepot/split0/model")
DEFAULT_QUERIES = Path("/tmp/evalrepo/out/real/homedepot/split0/test_qrels.csv")
DEFAULT_OUT = Path("bench/catalogue")
DEFAULT_WORK = Path("out/catalogue")
READING_FILE = "reading.md"  # the hand-written reading, kept next to the report
TWINS_FILE = "twins.json"  # `twins --out`'s figures over the whole catalogue (numpy only), included in the report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pintext.bench.catalogue", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the catalogue's pins JSONL")
    build.add_argument("--pins", type=int, default=1_000_000)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    build.add_argument("--out", type=Path, default=DEFAULT_WORK / "pins.jsonl")
    twins = commands.add_parser("twins", help="near-twins in the exact top 10 of real queries")
    twins.add_argument("--pins", type=Path, required=True, help="a pins JSONL (build's output)")
    twins.add_argument("--limit", type=int, default=None, help="only the first N pins")
    twins.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    twins.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="a qrels CSV with a `query` column")
    twins.add_argument("--sample", type=int, default=300)
    twins.add_argument("--old-recipe", action="store_true",
                       help="also the old recipe (bench.filtered.build_corpus) on the same titles, as many pins")
    twins.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    twins.add_argument("--out", type=Path, default=None, help="write OUT/twins.json (the report includes it)")
    run = commands.add_parser("run", help="the node measurement; writes OUT/report.md and OUT/results.json")
    run.add_argument("--sets", default="homedepot,catalogue", help="homedepot (the 54,667 real titles), catalogue")
    run.add_argument("--catalogue", type=Path, default=DEFAULT_WORK / "pins.jsonl", help="build's output")
    run.add_argument("--catalogue-pins", type=int, default=1_000_000, help="a seeded sample of this many")
    run.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    run.add_argument("--queries-file", type=Path, default=DEFAULT_QUERIES)
    run.add_argument("--queries", type=int, default=300)
    run.add_argument("--passes", type=int, default=3, help="timed passes over the queries per method")
    run.add_argument("--repeats", type=int, default=1, help="ingest then plain bulk this many times (tuning each "
                     "time), then the plain bulk once more")
    run.add_argument("--hnsw-m", type=lambda text: [int(v) for v in text.split(",")], default=list(HNSW_MS))
    run.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    run.add_argument("--work", type=Path, default=DEFAULT_WORK)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT)
    run.add_argument("--hnsw-pins", action="store_true",
                     help="also an HNSW m 16 index holding the whole pins (the store comparator a user would build)")
    run.add_argument("--keep", action="store_true", help="leave the indexes on the node")
    run.add_argument("--append", action="store_true", help="keep OUT/results.json's other corpora (run one at a time)")
    comparator = commands.add_parser(
        "store-comparator", help="only `run --hnsw-pins`'s store comparator, for a set OUT/results.json already holds")
    comparator.add_argument("--set", dest="label", required=True, help="homedepot or catalogue")
    comparator.add_argument("--catalogue", type=Path, default=DEFAULT_WORK / "pins.jsonl", help="build's output")
    comparator.add_argument("--catalogue-pins", type=int, default=1_000_000, help="a seeded sample of this many")
    comparator.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    comparator.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    comparator.add_argument("--out", type=Path, default=DEFAULT_OUT)
    render = commands.add_parser("render", help="re-render OUT/report.md from OUT/results.json and OUT/reading.md")
    render.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def sample_pins(path: Path, n: int, seed: int = 0) -> list[dict]:
    """`n` pins of a pins file, a seeded uniform sample in file order (all of them when it holds no more)."""
    pins = read_jsonl(path)
    if n >= len(pins):
        return pins
    rows = np.sort(np.random.default_rng(seed).choice(len(pins), size=n, replace=False))
    return [pins[row] for row in rows]


def git_state() -> tuple[str, str]:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.rstrip()

    changed = [line[3:] for line in git("status", "--short", "--untracked-files=no").splitlines()]
    return git("log", "-1", "--format=%h %s")[:160], ", ".join(changed)


def old_corpus_twins(args: argparse.Namespace, encoder: Any, queries: np.ndarray, n: int) -> dict:
    """The old corpus' recipe (`pintext.bench.filtered.build_corpus`: one real title plus two words of another) on
    the same real titles, with the same model and queries: what the catalogue's composition changes."""
    from pintext.bench.filtered import build_corpus

    products = [(title, "") for title in source_titles(args.shared)]
    return measure_twins(encoder, build_corpus(products, n - n % 100, seed=0), queries)


def run(args: argparse.Namespace) -> int:
    from pintext.bench.harness import machine_info, package_versions

    for path in (args.model / "runtime" / "runtime.json", args.queries_file, args.shared / "homedepot"):
        if not path.exists():
            print(f"error: {path} not found", file=sys.stderr)
            return 1
    began = time.perf_counter()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:6.0f}s] {message}", flush=True)

    commit, dirty = git_state()
    query_texts = read_queries(args.queries_file)
    args.work.mkdir(parents=True, exist_ok=True)
    sets = []
    for name in args.sets.split(","):
        if name == "homedepot":
            pins, title = homedepot_pins(args.shared), "The real Home Depot set (every title of `products.csv`)"
        elif name == "catalogue":
            pins = sample_pins(args.catalogue, args.catalogue_pins)
            title = (f"The catalogue-like corpus ({len(pins):,} pins"
                     + (f", a seeded sample of `{args.catalogue}`)" if len(pins) == args.catalogue_pins else ")"))
        else:
            print(f"error: --sets: unknown set {name!r} (homedepot, catalogue)", file=sys.stderr)
            return 1
        data = measure_set(name, pins, args.model, query_texts, args, log)
        data.update(title=title, commit=commit, dirty=dirty, started_at=started_at,
                    command="python -m pintext.bench.catalogue " + " ".join(sys.argv[1:]))
        data["verdicts"] = verdicts(data)
        sets.append(data)
        del pins
    report = {"command": "python -m pintext.bench.catalogue " + " ".join(sys.argv[1:]), "started_at": started_at,
              "seconds": time.perf_counter() - began,
              "machine": machine_info(), "versions": package_versions(), "commit": commit, "dirty": dirty,
              "node": sets[0]["node"] if sets else {"version": "-", "plugins": []}, "model": str(args.model),
              "queries_file": str(args.queries_file), "sets": sets}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.append and (args.out / "results.json").is_file():  # the other corpora of an earlier run stay
        earlier = json.loads((args.out / "results.json").read_text(encoding="utf-8"))["sets"]
        report["sets"] = [old for old in earlier if old["label"] not in {new["label"] for new in sets}] + sets
        report["seconds"] = sum(data["seconds"] for data in report["sets"])
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    render(args.out)
    log(f"report: {args.out / 'report.md'}")
    return 0


def store_comparator(args: argparse.Namespace) -> int:
    """Build the HNSW m 16 index of the whole pins (`run --hnsw-pins`) for a set an earlier `run` measured without
    it, with the same pins, model and vector type, and add its store to that set's figures and verdicts. Only the
    store is read (timings of a separate node run would not compare), so it may run on another node start."""
    from pintext.bench.node import open_node
    from pintext.encoder import Encoder
    from pintext.serving.opensearch import OpenSearchEngine

    results = args.out / "results.json"
    report = json.loads(results.read_text(encoding="utf-8"))
    data = next((item for item in report["sets"] if item["label"] == args.label), None)
    if data is None:
        print(f"error: {results} holds no set {args.label!r}: `run --sets {args.label}` first", file=sys.stderr)
        return 1
    pins = homedepot_pins(args.shared) if args.label == "homedepot" else sample_pins(args.catalogue,
                                                                                     args.catalogue_pins)
    if len(pins) != data["pins"]:
        print(f"error: {len(pins):,} pins, the measured set had {data['pins']:,}", file=sys.stderr)
        return 1
    encoder = Encoder.load(args.model)
    unit = embed(encoder, pins)
    kept, kept_pins = with_vectors(pins, unit)
    node = open_node()
    engine = OpenSearchEngine(node.client)
    try:
        engine.delete(PLAIN_INDEX)
        engine.create(PLAIN_INDEX, encoder.dim, {})  # the plain bulk's mapping, which the comparator copies
        built = build_hnsw_pins_index(engine, node.client, kept_pins, unit[kept], data["hnsw_vector_type"])
        stored = final_stats(engine, [HNSW_PINS_INDEX])
    finally:
        for index in (PLAIN_INDEX, HNSW_PINS_INDEX):
            engine.delete(index)
        node.close()
    data["hnsw"]["pins"] = built
    data["stored"].update(stored)
    data["store_comparator"] = {"command": "python -m pintext.bench.catalogue " + " ".join(sys.argv[1:]),
                                "finished_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                "commit": git_state()[0], "node": node.version}
    data["verdicts"] = verdicts(data)
    results.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    render(args.out)
    print(f"{args.label}: HNSW m 16 with the pins {stored[HNSW_PINS_INDEX]['size_bytes'] / 2**20:,.1f} MiB, "
          f"written in {built['write_seconds']:.0f} s")
    return 0


def render(out: Path) -> None:
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    reading = out / READING_FILE
    if reading.is_file():
        report["reading"] = reading.read_text(encoding="utf-8").strip().splitlines()
    if (out / TWINS_FILE).is_file():
        report["twins"] = json.loads((out / TWINS_FILE).read_text(encoding="utf-8"))
    (out / "report.md").write_text(render_report(report), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "render":
        render(args.out)
        return 0
    if args.command == "store-comparator":
        return store_comparator(args)
    if args.command == "build":
        if not (args.shared / "homedepot" / "products.csv").is_file():
            print(f"error: {args.shared}/homedepot/products.csv not found (the real data folder)", file=sys.stderr)
            return 1
        began = time.perf_counter()
        count = write_jsonl(args.out, catalogue_pins(source_titles(args.shared), args.pins, args.seed))
        print(f"{count:,} pins -> {args.out} in {time.perf_counter() - began:.0f} s")
        return 0
    return twins(args)


def twins(args: argparse.Namespace) -> int:
    """Near-twins in the exact top 10 of the catalogue (and of the old recipe on the same titles), numpy only."""
    from pintext.encoder import Encoder

    encoder = Encoder.load(args.model)
    _, queries = query_units(encoder, read_queries(args.queries), args.sample)
    pins = read_jsonl(args.pins, args.limit)
    figures = {f"catalogue: `{args.pins}`, {len(pins):,} pins": measure_twins(encoder, pins, queries)}
    if args.old_recipe:
        figures[f"the old corpus' recipe (`bench.filtered.build_corpus`: a real title + two words of another) on the "
                f"same titles, {len(pins):,} pins"] = old_corpus_twins(args, encoder, queries, len(pins))
    print(json.dumps(figures, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / TWINS_FILE).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
