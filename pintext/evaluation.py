"""Retrieval on judged queries: BM25, PinText exact, PinText served and hybrid, the same queries for each
(`pintext eval-retrieval` prints and writes what `evaluate_retrieval` returns).

- BM25: `pintext.queries.bm25_query` (a `multi_match` over the pins index's text fields, Lucene's default BM25
  similarity) on the real node; its metrics are also computed by OpenSearch's own `_rank_eval` API and compared
  with ours, query by query.
- exact: the model's `pintext.Encoder` over the whole corpus (`pintext.pin_vectors`, as ingest embeds pins),
  cosine in numpy, ties by pin id, re-ranked by the exact-match signal as served.
- served: `PinText.ingest` into an index for this model and corpus, then `PinText.search(k=100)` with the
  product's defaults: the same code `pintext ingest` and `pintext search --queries --json --k 100` run.
- hybrid: `PinText.search(hybrid=True)` the same way: BM25 and served fused by the model's
  `pintext.fusion.FusionConfig.load(MODEL)`.

The index is named after the model fingerprint and the corpus hash (or `index`), reused when the registry index
`pintext-eval-registry` records that it holds this corpus for this model, and left in place unless `cleanup`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.errors import BadInput, EngineUnavailable, ModelError, UsageError

SYSTEMS = ("bm25", "exact", "served", "hybrid")
NODE_SYSTEMS = ("bm25", "served", "hybrid")
RANKING_DEPTH = 100  # hits per query from every system: Recall@100's cut-off (pintext.trainer.retrieval.RECALL_K)
EVAL_INDEX_PREFIX = "pintext-eval-"
# Which corpus and model each eval index was filled with: a doc per index, id = the index name.
REGISTRY_INDEX = "pintext-eval-registry"
MSEARCH_BATCH = 50
EXACT_QUERY_BATCH = 256
RANK_EVAL_BATCH = 200
PIN_ID_FIELD = "id"  # the pins mapping's keyword copy of the pin id (sortable, unlike _id)


# ---- inputs ----------------------------------------------------------------------------------------------------


def parse_systems(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SYSTEMS]
    if unknown or not chosen:
        raise UsageError(f"--systems: unknown system(s) {', '.join(unknown) or '(none)'}; choose from "
                         f"{','.join(SYSTEMS)}")
    return [name for name in SYSTEMS if name in chosen]


def read_judgments(path: Path, queries: Path | None, split: str) -> Any:
    from pintext.schemas import RecordError
    from pintext.trainer.retrieval import load_judgments

    try:
        judgments = load_judgments(path, queries, split)
    except RecordError as error:
        raise BadInput(str(error)) from None
    except (FileNotFoundError, UnicodeDecodeError) as error:
        raise BadInput(f"{getattr(error, 'filename', None) or path}: cannot read the judgments ({error})") from None
    if not judgments.relevant_queries():
        raise BadInput(f"{path}: no query has a relevant (grade > 0) judgment")
    return judgments


def read_corpus(path: Path, out: Path) -> tuple[list[dict], dict]:
    """The corpus's valid pins (last line wins for a repeated id, as in the index) and what was rejected."""
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.readers import read_records
    from pintext.schemas import validate_pin

    dead_letter_path = out / "corpus.rejected.jsonl"
    dead_letter_path.unlink(missing_ok=True)
    by_id: dict[str, dict] = {}
    lines = 0
    with DeadLetter(dead_letter_path) as rejected:
        for _, pin in read_records(path, validate_pin, rejected):
            lines += 1
            by_id[pin["id"]] = pin
        rejected_count = rejected.count
    summary = {"path": str(path), "sha256": file_sha256(path), "pins": len(by_id), "valid_lines": lines,
               "rejected_lines": rejected_count, "dead_letter": str(dead_letter_path)}
    return sorted(by_id.values(), key=lambda pin: pin["id"]), summary


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- the node ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """How to reach the OpenSearch node: the product's own calls go through `pintext.open`, BM25 and `_rank_eval`
    through an opensearch-py client of the same options."""

    url: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    insecure: bool = False

    @property
    def client(self) -> Any:
        return _client(self)

    def pintext(self, model: Path, index: str) -> Any:
        """The product as a user runs it: `pintext.open` with this node's options and the defaults otherwise."""
        from pintext.api.service import PinText

        return PinText(model, self.url, index, engine="opensearch", user=self.user, password=self.password,
                       ca_certs=self.ca_certs, insecure=self.insecure)


_clients: dict[Node, Any] = {}


def _client(node: Node) -> Any:
    """One opensearch-py client per node, asked for its info first: a node that does not answer is one line."""
    if node not in _clients:
        from pintext.serving.engines import EngineOptions, access_problem, redact, warn_if_insecure
        from pintext.serving.opensearch_client import connect

        warn_if_insecure(EngineOptions(url=node.url, insecure=node.insecure))
        where = node.url or os.environ.get("OPENSEARCH_URL")
        try:
            client = connect(url=node.url, user=node.user, password=node.password, verify_certs=not node.insecure,
                             ca_certs=str(node.ca_certs) if node.ca_certs else None)
            client.info()
        except Exception as error:  # noqa: BLE001 - any failure to reach the node is reported the same way
            problem = access_problem(error, where, node.user, node.password)
            raise EngineUnavailable(problem or f"cannot reach OpenSearch at {where or 'the managed node'}: "
                                    f"{redact(str(error), node.url, node.password)} (start one with `pintext "
                                    "opensearch up`, or pass --url / set OPENSEARCH_URL)") from None
        _clients[node] = client
    return _clients[node]


# ---- the index -------------------------------------------------------------------------------------------------


def eval_index_name(model_fingerprint: str, corpus_sha256: str) -> str:
    return f"{EVAL_INDEX_PREFIX}{model_fingerprint[:12]}-{corpus_sha256[:8]}".lower()


def recorded_corpus(client: Any, index: str) -> dict:
    """What the registry says `index` was filled with ({} when it says nothing)."""
    if not client.indices.exists(index=REGISTRY_INDEX):
        return {}
    found = client.get(index=REGISTRY_INDEX, id=index, ignore=404)
    return found.get("_source", {}) if found.get("found") else {}


def holds_corpus(client: Any, index: str, marker: dict) -> bool:
    """True when the registry says the index was filled with this corpus for this model and it still holds it."""
    recorded = recorded_corpus(client, index)
    if recorded and recorded.get("corpus_sha256") != marker["corpus_sha256"]:
        raise UsageError(f"index {index!r} holds another corpus (sha256 {recorded.get('corpus_sha256', '?')[:12]}, "
                         f"this one {marker['corpus_sha256'][:12]}): pass another --index or delete it (pintext "
                         f"index delete --index {index})")
    return (recorded.get("model_fingerprint") == marker["model_fingerprint"]
            and recorded.get("docs") == client.count(index=index)["count"])


def record_corpus(client: Any, index: str, marker: dict, ingest_summary: dict) -> None:
    """Note in the registry which corpus and model the index now holds. (Not in the pins index's own `_meta`:
    a mapping update on an index with a knn_vector field fails its shard on k-NN 2.19.1.)"""
    if not client.indices.exists(index=REGISTRY_INDEX):
        client.indices.create(index=REGISTRY_INDEX, body={"settings": {"number_of_shards": 1,
                                                                        "number_of_replicas": 0},
                                                           "mappings": {"dynamic": False, "properties": {}}},
                              ignore=400)  # 400: created meanwhile by another run
    client.index(index=REGISTRY_INDEX, id=index, refresh=True,
                 body={**marker, "docs": client.count(index=index)["count"], "ingest": ingest_summary})


def concrete_index(client: Any, index: str) -> str:
    """The one concrete index behind a name (itself, or the index its alias points to)."""
    (name,) = client.indices.get(index=index)
    return str(name)


def forget_index(client: Any, index: str) -> None:
    """Delete an eval index (every version behind its alias) and its registry entry."""
    if client.indices.exists(index=index):
        for name in client.indices.get(index=index):
            client.indices.delete(index=name)
    if client.indices.exists(index=REGISTRY_INDEX):
        client.delete(index=REGISTRY_INDEX, id=index, refresh=True, ignore=404)


def prepare_index(node: Node, model: Path, corpus: dict, fingerprint: str, index: str | None, out: Path) -> dict:
    """Ingest the corpus with `pintext ingest` unless the index already holds it for this model."""
    client = node.client
    name = index or eval_index_name(fingerprint, corpus["sha256"])
    marker = {"corpus_sha256": corpus["sha256"], "model_fingerprint": fingerprint}
    if client.indices.exists(index=name) and holds_corpus(client, name, marker):
        recorded = recorded_corpus(client, name)
        return {"name": name, "reused": True, "docs": recorded["docs"], "ingest": recorded.get("ingest", {})}
    dead_letter = out / "ingest.rejected.jsonl"
    dead_letter.unlink(missing_ok=True)
    started = time.perf_counter()
    summary = node.pintext(model, name).ingest(Path(corpus["path"]), dead_letter=dead_letter,
                                               checkpoint=out / "ingest.checkpoint.json")
    docs = client.count(index=name)["count"]
    if docs > corpus["pins"]:
        raise UsageError(f"index {name!r} holds {docs} docs but the corpus has {corpus['pins']} pins: it holds "
                         "other documents too; pass a fresh --index")
    kept = {key: summary.get(key) for key in ("indexed", "created", "updated", "rejected", "rejected_by_reason",
                                              "seconds", "docs_per_second")}
    record_corpus(client, name, marker, kept)
    return {"name": name, "reused": False, "docs": docs, "ingest": kept,
            "seconds": round(time.perf_counter() - started, 2)}


# ---- the systems -----------------------------------------------------------------------------------------------


Ranking = list[tuple[str, float]]  # (doc id, score), best first


def bm25_request(text: str) -> dict:
    """The BM25 request both our ranking and `_rank_eval` run. Ties go to the smaller pin id (PinText's tie rule,
    as `bm25_search` has it): Lucene's own tie order is the doc order, which background merges may change between
    two requests."""
    from pintext.queries import bm25_query

    return {"query": bm25_query(text), "sort": [{"_score": "desc"}, {PIN_ID_FIELD: "asc"}]}


def bm25_rankings(client: Any, index: str, texts: dict[str, str], advance: Any) -> dict:
    """Top RANKING_DEPTH BM25 hits per query."""
    rankings: dict[str, Ranking] = {}
    qids = list(texts)
    for start in range(0, len(qids), MSEARCH_BATCH):
        batch = qids[start:start + MSEARCH_BATCH]
        lines: list[dict] = []
        for qid in batch:
            lines += [{}, {**bm25_request(texts[qid]), "size": RANKING_DEPTH, "_source": False}]
        responses = client.msearch(index=index, body=lines)["responses"]
        for qid, response in zip(batch, responses):
            if "error" in response:
                raise EngineUnavailable(f"BM25 search for {texts[qid]!r} failed: {response['error']}")
            rankings[qid] = [(hit["_id"], float(hit["_score"])) for hit in response["hits"]["hits"]]
        advance(len(batch))
    return rankings


def exact_rankings(encoder: Any, pins: list[dict], texts: dict[str, str], advance: Any, match: Any = None) -> dict:
    """Cosine of each query with every pin the model can embed, in numpy; ties by pin id (pins are id-sorted). With
    `match` on, the top `match_depth` are re-ranked by the exact-match signal, as `pintext search` serves them."""
    import numpy as np

    from pintext.exact_match import ExactMatch, match_depth, rerank_ids
    from pintext.pin_vectors import pin_vectors
    from pintext.schemas import pin_text
    from pintext.trainer.retrieval import top_k_indices

    vectors = pin_vectors(encoder, pins)
    norms = np.linalg.norm(vectors, axis=1)
    embeddable = np.flatnonzero(norms > 0)  # a zero vector has no direction: no system can find it by vector
    unit = vectors[embeddable] / norms[embeddable, None]
    ids = [pins[row]["id"] for row in embeddable]
    match = match or ExactMatch()
    pin_texts = {pin["id"]: pin_text(pin) for pin in pins} if match.on else {}
    depth = match_depth(RANKING_DEPTH) if match.on else RANKING_DEPTH
    rankings: dict[str, Ranking] = {}
    qids = list(texts)
    for start in range(0, len(qids), EXACT_QUERY_BATCH):
        batch = qids[start:start + EXACT_QUERY_BATCH]
        queries = encoder.encode([texts[qid] for qid in batch])
        query_norms = np.linalg.norm(queries, axis=1)
        scores = (queries / np.maximum(query_norms, 1e-12)[:, None]) @ unit.T
        for qid, row, norm in zip(batch, scores, query_norms):
            top = top_k_indices(row, depth) if norm > 0 else []
            ranked = [(ids[i], float(row[i])) for i in top]
            if match.on:
                ranked = rerank_ids(ranked, pin_texts, texts[qid], match)
            rankings[qid] = ranked[:RANKING_DEPTH]
        advance(len(batch))
    return rankings


def served_rankings(node: Node, model: Path, index: str, texts: dict[str, str], hybrid: bool,
                    advance: Any) -> dict:
    """The product's own search of every query, k = 100 and its defaults otherwise (what `pintext search
    [--hybrid] --queries FILE --json --k 100` runs), in-process."""
    from collections import Counter

    served = node.pintext(model, index)
    plan = served.plan(RANKING_DEPTH, hybrid=hybrid)
    rankings: dict[str, Ranking] = {}
    took: list[float] = []
    modes: Counter[str] = Counter()
    for qid, text in texts.items():
        started = time.perf_counter()
        answer = served.search(text, plan=plan)
        took.append((time.perf_counter() - started) * 1000)
        rankings[qid] = [(hit.id, float(hit.score)) for hit in answer.hits]
        modes[answer.mode] += 1
        advance(1)
    call = f"pintext.open(MODEL, index={index!r}).search(text, k={RANKING_DEPTH}{', hybrid=True' if hybrid else ''})"
    return {"rankings": rankings, "command": call, "modes": dict(modes),
            "took_ms_median": sorted(took)[len(took) // 2] if took else 0.0}


# ---- OpenSearch's own metrics ----------------------------------------------------------------------------------


def rank_eval_metrics() -> dict[str, dict]:
    """Our metric -> the `_rank_eval` metric that computes it (relevant = grade >= 1, i.e. > 0)."""
    from pintext.trainer.retrieval import MRR_K, NDCG_K, RECALL_K

    return {"ndcg@10": {"dcg": {"k": NDCG_K, "normalize": True}},
            "recall@100": {"recall": {"k": RECALL_K, "relevant_rating_threshold": 1}},
            "mrr@10": {"mean_reciprocal_rank": {"k": MRR_K, "relevant_rating_threshold": 1}}}


def rank_eval_bm25(client: Any, index: str, judgments: Any, qids: list[str]) -> dict:
    """Per query and metric, `_rank_eval`'s score of the same BM25 request, and how many hits it saw."""
    scores: dict[str, dict[str, float]] = {qid: {} for qid in qids}
    hits_seen: dict[str, int] = {}
    # Ratings name the concrete index a hit comes from; `index` is the alias over it (pintext.serving.rollout).
    concrete = concrete_index(client, index)
    for metric, spec in rank_eval_metrics().items():
        for start in range(0, len(qids), RANK_EVAL_BATCH):
            batch = qids[start:start + RANK_EVAL_BATCH]
            requests = [{"id": qid, "request": bm25_request(judgments.queries[qid]),
                         "ratings": [{"_index": concrete, "_id": doc, "rating": grade}
                                     for doc, grade in judgments.grades[qid].items()]} for qid in batch]
            details = client.rank_eval(index=index, body={"requests": requests, "metric": spec})["details"]
            for qid in batch:
                scores[qid][metric] = float(details[qid]["metric_score"])
                if metric == "ndcg@10":
                    hits_seen[qid] = len(details[qid]["hits"])
    return {"scores": scores, "hits": hits_seen}


def compare_with_rank_eval(ours: dict, theirs: dict, judgments: Any) -> dict:
    """Largest per-query difference per metric. `_rank_eval`'s ideal DCG takes only as many judged docs as the
    search returned hits, ours the top 10 of all judged docs; they agree when it returned min(10, judged) hits."""
    import statistics

    from pintext.trainer.retrieval import NDCG_K

    check: dict[str, dict] = {}
    for metric in rank_eval_metrics():
        compared = [qid for qid in theirs["scores"] if metric != "ndcg@10"
                    or theirs["hits"][qid] >= min(NDCG_K, len(judgments.grades[qid]))]
        diffs = [abs(ours[qid][metric] - theirs["scores"][qid][metric]) for qid in compared]
        check[metric] = {
            "rank_eval_mean": statistics.fmean(theirs["scores"][qid][metric] for qid in theirs["scores"]),
            "ours_mean": statistics.fmean(ours[qid][metric] for qid in theirs["scores"]),
            "queries_compared": len(compared), "max_abs_diff": max(diffs, default=0.0)}
    return check


# ---- report ----------------------------------------------------------------------------------------------------


def machine_and_versions(client: Any | None) -> tuple[dict, dict]:
    """The benchmark harness's machine facts and package versions, plus pintext's and the node's versions."""
    from pintext import __version__
    from pintext.bench.harness import machine_info, package_versions

    found = {"pintext": __version__, **package_versions()}
    if client is not None:
        found["opensearch node"] = client.info()["version"]["number"]
    return machine_info(), found


def command_line() -> str:
    """This command as typed, with any --password value hidden."""
    args, hide_next = [], False
    for arg in sys.argv[1:]:
        if hide_next:
            args.append("***")
            hide_next = False
        elif arg == "--password":
            args.append(arg)
            hide_next = True
        else:
            args.append("--password=***" if arg.startswith("--password=") else arg)
    return "pintext " + shlex.join(args)


def write_plot(systems: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pintext.trainer.retrieval import METRICS

    figure, axis = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(systems))
    for offset, (name, result) in enumerate(systems.items()):
        positions = [i + offset * width for i in range(len(METRICS))]
        bars = axis.bar(positions, [result["mean"][m] for m in METRICS], width, label=name)
        axis.bar_label(bars, fmt="%.3f", fontsize=7)
    axis.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(METRICS))], METRICS)
    axis.set_ylim(0, 1)
    axis.set_ylabel("mean over judged queries")
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("Retrieval on judged queries")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown_report(results: dict) -> str:
    from pintext.trainer.retrieval import METRICS

    lines = ["# Retrieval evaluation", "", f"`{results['command']}`", "",
             "| system | " + " | ".join(METRICS) + " | queries | seconds |",
             "|---|" + "---:|" * (len(METRICS) + 2)]
    for name, result in results["systems"].items():
        lines.append(f"| {name} | " + " | ".join(f"{result['mean'][m]:.3f}" for m in METRICS)
                     + f" | {result['queries']} | {result['seconds']:.1f} |")
    judged, corpus = results["judgments"], results["corpus"]
    lines += ["", "![metrics per system](retrieval.png)", "", "## Data", "",
              f"- judgments: `{judged['source']}`: {judged['judgments']} judgments of {judged['queries']} queries; "
              f"{judged['evaluated_queries']} queries with a relevant doc are evaluated"
              f" ({judged['duplicates']} duplicate judgments kept at their highest grade, "
              f"{judged['negative_grades']} negative grades counted as 0)",
              f"- judged docs absent from the corpus: {judged['absent']['docs_absent_from_corpus']} docs, "
              f"{judged['absent']['judgments_absent_from_corpus']} judgments "
              f"({judged['absent']['relevant_judgments_absent_from_corpus']} relevant) left out; "
              f"{judged['absent']['queries_left_without_relevant_doc']} queries lost every relevant doc",
              f"- corpus: `{corpus['path']}`: {corpus['pins']} pins ({corpus['rejected_lines']} lines rejected)"]
    if results.get("index"):
        index = results["index"]
        ingest = index.get("ingest", {})
        lines.append(f"- index `{index['name']}` ({'reused' if index['reused'] else 'ingested now'}): "
                     f"{index['docs']} docs; ingest rejected {ingest.get('rejected', '?')} "
                     f"{json.dumps(ingest.get('rejected_by_reason', {}))}")
    lines += ["", "## Systems", "", *(f"- {name}: {text}" for name, text in results["how"].items())]
    if results.get("rank_eval_check"):
        lines += ["", "## Cross-check with OpenSearch `_rank_eval` (BM25)", "",
                  "| metric | ours | _rank_eval | queries compared | max abs diff |", "|---|---:|---:|---:|---:|"]
        for metric, check in results["rank_eval_check"].items():
            lines.append(f"| {metric} | {check['ours_mean']:.4f} | {check['rank_eval_mean']:.4f} | "
                         f"{check['queries_compared']} | {check['max_abs_diff']:.2g} |")
        lines += ["", "_rank_eval's ideal DCG uses only as many judged docs as the search returned hits, ours the "
                  "top 10 of all judged docs: NDCG is compared on the queries where the two definitions coincide."]
    machine_info, found = results["machine"], results["versions"]
    lines += ["", "## Machine and versions", "",
              f"- {machine_info['platform']}, {machine_info['cores']} cores ({machine_info['cpu_model']}), "
              f"{machine_info['memory']}, load average at the end {machine_info['load_average_at_start']}",
              "- " + ", ".join(f"{name} {version}" for name, version in found.items()),
              f"- {results['seconds']:.1f} s in all", ""]
    return "\n".join(lines)


# ---- the command -----------------------------------------------------------------------------------------------


class NoProgress:
    """The progress protocol `evaluate_retrieval` reports to (rich's `Progress` has it), doing nothing."""

    def add_task(self, description: str, total: int) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        return None


def timed(progress: Any, label: str, total: int, run: Any) -> tuple[Any, float]:
    task = progress.add_task(label, total=total)
    started = time.perf_counter()
    result = run(lambda n: progress.advance(task, n))
    return result, time.perf_counter() - started


def run_systems(systems: list[str], model: Path, encoder: Any, pins: list[dict], corpus: dict, texts: dict,
                node: Node, index: str | None, out: Path, progress: Any, results: dict) -> dict:
    """The rankings of every system asked for, and the seconds each took."""
    rankings: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    if "exact" in systems:
        from pintext.exact_match import ExactMatch

        match = ExactMatch.load(model).bound(encoder.word_vectors)
        results["exact_match"] = match.to_dict()
        rankings["exact"], seconds["exact"] = timed(
            progress, "exact", len(texts), lambda advance: exact_rankings(encoder, pins, texts, advance, match))
    if not any(name in systems for name in NODE_SYSTEMS):
        return {"rankings": rankings, "seconds": seconds}
    from pintext.fusion import FusionConfig

    results["index"] = prepare_index(node, model, corpus, encoder.fingerprint, index, out)
    name = results["index"]["name"]
    if "bm25" in systems:
        rankings["bm25"], seconds["bm25"] = timed(
            progress, "bm25", len(texts), lambda advance: bm25_rankings(node.client, name, texts, advance))
    for system in ("served", "hybrid"):
        if system in systems:
            found, seconds[system] = timed(progress, system, len(texts), lambda advance: served_rankings(
                node, model, name, texts, system == "hybrid", advance))
            rankings[system] = found.pop("rankings")
            results.setdefault("search_commands", {})[system] = found
    if "hybrid" in systems:
        results["fusion"] = FusionConfig.load(model).to_dict()
    return {"rankings": rankings, "seconds": seconds}


def describe_systems(results: dict) -> dict[str, str]:
    from pintext.queries import TEXT_FIELDS

    def via_search(system: str) -> str:
        found = results.get("search_commands", {}).get(system, {})
        return (f"`{found.get('command')}` (its defaults otherwise); median {found.get('took_ms_median', 0):.1f} ms "
                f"a query; answers by mode {found.get('modes')}")

    how = {"bm25": f"OpenSearch `multi_match` (pintext.queries.bm25_query) over {list(TEXT_FIELDS)} (Lucene BM25 "
                   "defaults), top 100",
           "exact": "the model's numpy Encoder over every corpus pin with a known word (pintext.pin_vectors, as "
                    "ingest embeds pins), cosine, top 100, re-ranked by the model's exact-match signal "
                    f"{results.get('exact_match')} (MODEL/match.json)",
           "served": via_search("served"),
           "hybrid": via_search("hybrid") + f"; fusion {results.get('fusion')} (MODEL/hybrid.json, else default)"}
    return {name: how[name] for name in results["systems"]}


def write_outputs(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_plot(results["systems"], out / "retrieval.png")
    (out / "report.md").write_text(markdown_report(results), encoding="utf-8")


@dataclass(frozen=True)
class EvalInputs:
    """What `evaluate_retrieval` reads (see `pintext eval-retrieval --help`)."""

    corpus: Path
    judgments: Path
    out: Path
    model: Path | None
    queries: Path | None = None
    split: str = "test"
    index: str | None = None
    systems: tuple[str, ...] = SYSTEMS
    cleanup: bool = False
    command: str = ""


def evaluate_retrieval(inputs: EvalInputs, node: Node = Node(), progress: Any = None) -> dict:
    """Rank every judged query with each system, score the rankings, write report.md, results.json and
    retrieval.png into `inputs.out`, and return the results."""
    from pintext.api.connection import require_index_name
    from pintext.encoder import Encoder
    from pintext.trainer.retrieval import evaluate_rankings

    began = time.perf_counter()
    chosen = [name for name in SYSTEMS if name in inputs.systems]
    if inputs.index is not None:  # before anything is read or asked: `cleanup` deletes what the name matches
        require_index_name(inputs.index)
    if inputs.model is None:
        raise ModelError("no model: pass --model MODEL or set PINTEXT_MODEL")
    out = inputs.out
    out.mkdir(parents=True, exist_ok=True)
    judged_all = read_judgments(inputs.judgments, inputs.queries, inputs.split)
    pins, corpus_summary = read_corpus(inputs.corpus, out)
    judged, absent = judged_all.restricted_to({pin["id"] for pin in pins})
    if not judged.relevant_queries():
        raise BadInput(f"{inputs.judgments}: none of the relevant judged docs is in the corpus {inputs.corpus}")
    try:
        encoder = Encoder.load(inputs.model)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot load the model: {error}") from None
    qids = judged.relevant_queries()
    texts = {qid: judged.queries[qid] for qid in qids}
    results: dict[str, Any] = {"command": inputs.command, "model": str(inputs.model), "model_fingerprint":
                               encoder.fingerprint, "corpus": corpus_summary}
    ran = run_systems(chosen, inputs.model, encoder, pins, corpus_summary, texts, node, inputs.index, out,
                      progress or NoProgress(), results)
    results["systems"] = {name: {**evaluate_rankings({q: [d for d, _ in r] for q, r in ran["rankings"][name].items()},
                                                     judged), "seconds": ran["seconds"][name]} for name in chosen}
    results["judgments"] = {"source": judged_all.source, "judgments": judged_all.judgment_count,
                            "queries": len(judged_all.grades), "evaluated_queries": len(qids),
                            "duplicates": judged_all.duplicates, "negative_grades": judged_all.negative_grades,
                            "absent": absent}
    if "bm25" in chosen:
        theirs = rank_eval_bm25(node.client, results["index"]["name"], judged, qids)
        results["rank_eval_check"] = compare_with_rank_eval(results["systems"]["bm25"]["per_query"], theirs, judged)
    results["how"] = describe_systems(results)
    uses_node = "index" in results
    results["machine"], results["versions"] = machine_and_versions(node.client if uses_node else None)
    if inputs.cleanup and uses_node:
        forget_index(node.client, results["index"]["name"])
        results["index"]["deleted"] = True
    results["seconds"] = time.perf_counter() - began
    write_outputs(results, out)
    return results
