"""The benchmark driver behind `pintext bench --profile quick|full`: every section, one report.

Order: generator throughput, 100k-pin corpus (`pintext synth`), pairs + training on the committed sample
(`pintext pairs`, `pintext train`), encoding, LSH tuning on the corpus (in-memory replica), ingest on the real
node (tuned LSH), retrieval on the real node, quality vs cost. A section that fails is reported as not
measured with its error, and the run goes on. Work files live in `$PINTEXT_HOME/bench/<profile>/`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pintext.bench.harness import Report, command_line, load_average, markdown_table, stopwatch

SAMPLE_SEED = 7  # data/sample was made with `pintext synth --out data/sample --seed 7`
SAMPLE_PINS = 4000  # ... and the default 4000 pins, so SynthConfig.topics() gave 67 topics


@dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark run."""

    name: str
    pins: int
    encode_texts: int
    minilm_texts: int
    tune_queries: int
    node_queries: int
    exact_queries: int
    synth_pins: int
    tables: tuple[int, ...]
    bits: tuple[int, ...]
    probes: tuple[int, ...]
    windows: tuple[int, ...]
    epochs: float = 3.0
    hnsw: bool = True
    target_recall: float = 0.95
    extra_lsh_fields: bool = True  # also measure the default and a many-bits LSH on extra token fields
    tokens_pins: int = 100_000  # real-text pins of the token-family section (bench/tokens.py)
    catalogue_pins: int = 100_000  # pins of the catalogue-like corpus the catalogue section runs (bench/catalogue.py)


PROFILES = {
    "tiny": Profile("tiny", pins=5_000, encode_texts=5_000, minilm_texts=200, tune_queries=100, node_queries=50,
                    exact_queries=20, synth_pins=5_000, tables=(32, 64), bits=(6, 8), probes=(0, 1),
                    windows=(50, 200), epochs=1.0, tokens_pins=5_000, catalogue_pins=5_000),
    "quick": Profile("quick", pins=100_000, encode_texts=50_000, minilm_texts=2_000, tune_queries=300,
                     node_queries=300, exact_queries=100, synth_pins=100_000, tables=(16, 32, 64, 128),
                     bits=(8, 10, 12, 14), probes=(0, 1, 2), windows=(500, 1000, 2000, 4000)),
    "full": Profile("full", pins=1_000_000, encode_texts=50_000, minilm_texts=2_000, tune_queries=500,
                    node_queries=500, exact_queries=100, synth_pins=1_000_000, tables=(16, 32, 64, 128),
                    bits=(10, 12, 14, 16), probes=(0, 1, 2), windows=(1000, 2000, 4000, 8000), tokens_pins=1_000_000,
                    catalogue_pins=1_000_000),
    # Latency at 1M pins on a 2-core machine in minutes, not hours: a small grid around the quick profile's
    # choice, no HNSW build and no extra token fields (each of those re-indexes 1M documents). Its `tokens`
    # section is issue 11's benchmark: both token families, HNSW and the exact script on the same 1M real-text
    # pins (~50 minutes alone: `pintext bench --profile scale --only tokens --out bench/scale-1m`).
    "scale": Profile("scale", pins=1_000_000, encode_texts=50_000, minilm_texts=200, tune_queries=300,
                     node_queries=300, exact_queries=50, synth_pins=1_000_000, tables=(64,), bits=(8, 10),
                     probes=(0, 1), windows=(2000, 4000), hnsw=False, extra_lsh_fields=False,
                     tokens_pins=1_000_000, catalogue_pins=1_000_000),
}


@dataclass
class Context:
    """What earlier sections hand to later ones."""

    profile: Profile
    work: Path
    sample: Path
    out: Path
    log: Callable[[str], None]
    pins_file: Path | None = None
    model_dir: Path | None = None
    pairs_dir: Path | None = None
    ids: list[str] = field(default_factory=list)
    corpus: np.ndarray | None = None
    queries: np.ndarray | None = None
    lsh_choice: Any = None
    node: Any = None


_T = TypeVar("_T")


def ready(value: _T | None, what: str) -> _T:
    """A Context field an earlier section fills (SECTIONS names what each section needs, so `run` orders them)."""
    if value is None:
        raise RuntimeError(f"{what} is not ready: the section that makes it has not run")
    return value


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


# ---- sections ----------------------------------------------------------------------------------------------


def section_synth(ctx: Context, report: Report) -> None:
    from pintext.bench.bench_synth import run as synth_run

    result = synth_run(ctx.profile.synth_pins, work_dir=ctx.work)
    rows = [{"pins": result["pins"], "users": result["users"], "events": result["events"],
             "pins/s (world + pins)": result["pins_per_s"], "events/s": result["events_per_s"],
             "seconds": result["total_s"], "MiB written": result["bytes_written"] / 2**20}]
    report.add("synth", "Generator throughput (bench/bench_synth.py)",
               f"`pintext.bench.bench_synth.run({ctx.profile.synth_pins})`: pins, users and events written to a "
               "temporary folder, then deleted.\n\n" + markdown_table(rows), result, 0.0)


def section_corpus(ctx: Context, report: Report) -> None:
    """`pintext synth` the benchmark corpus with the sample's vocabulary (same seed, same topic count)."""
    from pintext.ingest.synth.generator import SynthConfig, build_world, generate, query_text

    topics = SynthConfig(n_pins=SAMPLE_PINS, seed=SAMPLE_SEED).topics()
    corpus_dir = ctx.work / f"corpus-{ctx.profile.pins}"
    ctx.pins_file = corpus_dir / "pins.jsonl"
    with stopwatch() as timer:
        if not ctx.pins_file.exists():  # what `pintext synth --users 100 --events 1000` writes, in-process
            generate(SynthConfig(n_pins=ctx.profile.pins, n_users=100, n_events=1000, seed=SAMPLE_SEED,
                                 n_topics=topics), corpus_dir)
    world = build_world(SynthConfig(n_pins=ctx.profile.pins, seed=SAMPLE_SEED, n_topics=topics))
    texts = sorted({query_text(world, t, q) for t in range(world.query_words.shape[0])
                    for q in range(world.query_words.shape[1])})
    (corpus_dir / "queries.jsonl").write_text("".join(json.dumps(text) + "\n" for text in texts))
    report.add("corpus", "Benchmark corpus",
               f"`synth --pins {ctx.profile.pins} --users 100 --events 1000 --seed {SAMPLE_SEED} --topics {topics}` "
               f"(in-process, {timer['seconds']:.1f} s; reused when present): {ctx.profile.pins:,} "
               f"pins drawn from the same latent model as the committed sample (seed {SAMPLE_SEED}, {topics} topics, "
               f"so the same vocabulary), and its {len(texts):,} distinct search queries (the generator's query "
               "pools, colloquial word forms) as benchmark queries.",
               {"pins_file": str(ctx.pins_file), "queries": len(texts), "topics": topics,
                "seconds": timer["seconds"]}, 0.0)


def section_train(ctx: Context, report: Report) -> None:
    from pintext.bench import train as train_bench

    markdown, data, ctx.model_dir, ctx.pairs_dir = train_bench.run(ctx.sample, ctx.work / "sample-model",
                                                                   ctx.profile.epochs)
    report.add("train", "Training on CPU (`pintext train` on the sample)", markdown, data, 0.0)


def _pins_texts_and_ids(pins_file: Path) -> tuple[list[dict], list[str], list[str]]:
    from pintext.schemas import pin_text

    pins, texts, ids = [], [], []
    with open(pins_file, encoding="utf-8") as handle:
        for line in handle:
            pin = json.loads(line)
            pins.append(pin)
            texts.append(pin_text(pin))
            ids.append(pin["id"])
    return pins, texts, ids


def section_encode(ctx: Context, report: Report) -> None:
    from pintext.bench import encode as encode_bench
    from pintext.encoder import Encoder

    pins_file, model_dir = ready(ctx.pins_file, "the pins file"), ready(ctx.model_dir, "the model")
    pins, texts, ids = _pins_texts_and_ids(pins_file)
    markdown, data = encode_bench.run(model_dir, texts[:ctx.profile.encode_texts], ctx.profile.minilm_texts)
    report.add("encode", "Encoding speed", markdown, data, 0.0)
    report.goal("Encoder vs all-MiniLM-L6-v2", ">= 300x texts/s", data["encoder_vs_minilm"],
                data["encoder_vs_minilm"] >= 300)
    report.goal("Encoder vs same model through torch", ">= 1x texts/s", data["encoder_vs_same_model_torch"],
                data["encoder_vs_same_model_torch"] >= 1.0)
    # The corpus as the index holds it (pintext.pin_vectors, as ingest embeds); pins with no vector are not ranked.
    from pintext.pin_vectors import pin_vectors

    encoder = Encoder.load(model_dir)
    vectors = pin_vectors(encoder, pins)
    known = np.linalg.norm(vectors, axis=1) > 0
    ctx.corpus, ctx.ids = vectors[known], [pin_id for pin_id, ok in zip(ids, known) if ok]
    query_texts = [json.loads(line) for line in (pins_file.parent / "queries.jsonl").read_text().splitlines()]
    query_vectors = encoder.encode(query_texts)
    query_vectors = query_vectors[np.linalg.norm(query_vectors, axis=1) > 0]
    rng = np.random.default_rng(0)
    ctx.queries = query_vectors[rng.permutation(len(query_vectors))]


def section_tune(ctx: Context, report: Report) -> None:
    from pintext.bench import lsh_sim
    from pintext.bench.lsh_sim import CLAUSE_COST, RESCORE_COST
    from pintext.tokens.lsh import RandomHyperplaneLSH

    profile = ctx.profile
    corpus, model_dir = ready(ctx.corpus, "the corpus vectors"), ready(ctx.model_dir, "the model")
    sample = ready(ctx.queries, "the query vectors")[:profile.tune_queries]
    choice, reached, points = lsh_sim.tune(corpus, sample, profile.tables, profile.bits, profile.probes,
                                           profile.windows, profile.target_recall,
                                           on_config=lambda t, b: ctx.log(f"  swept {t}x{b}"))
    ctx.lsh_choice = choice
    lsh = RandomHyperplaneLSH(dim=corpus.shape[1], tables=choice.tables, bits=choice.bits)
    (model_dir / "lsh.json").write_text(json.dumps(lsh.to_dict(), indent=2) + "\n")
    plot = _plot_sweep(points, ctx.out / "lsh_sweep.png")
    best_rows = sorted(points, key=lambda p: p.cost)
    frontier = [p for i, p in enumerate(best_rows) if p.recall > max([q.recall for q in best_rows[:i]] or [-1])]
    rows = [_point_row(p) for p in frontier]
    markdown = "\n".join([
        f"`pintext lsh tune` logic (bench/lsh_sim.py) over the {len(ctx.ids):,}-pin corpus with {len(sample)} "
        f"benchmark queries: tables {list(profile.tables)} x bits {list(profile.bits)} x probes "
        f"{list(profile.probes)} x window {list(profile.windows)} = {len(points)} settings, swept on the in-memory "
        "replica of the index (same LSH code, same scoring and tie rule), so no re-ingest per setting; the chosen "
        "tables x bits is then ingested into the real node and confirmed there (next sections). 'Fastest' is "
        f"the smallest cost = postings visited + {RESCORE_COST:g} x pins rescored + {CLAUSE_COST:g} x term clauses "
        "(calibrated on the node, "
        "see the cost model check below the retrieval table).",
        "",
        f"**Choice** (target recall@10 >= {profile.target_recall}): {choice.tables} tables x {choice.bits} bits, "
        f"probes {choice.probes}, window {choice.window}: replica recall@10 {choice.recall:.3f}, "
        f"{100 * choice.candidate_share:.2f}% of the corpus matched, {100 * choice.rescored_share:.2f}% rescored"
        + ("" if reached else " — **no setting of the grid reached the target; this is the best recall**") + ".",
        "",
        "Cost/recall frontier of the sweep (every setting is in report.json):",
        "",
        markdown_table(rows),
    ])
    report.add("tune", "LSH tuning (grid on the in-memory replica)", markdown,
               {"choice": choice.to_json(), "reached": reached, "points": [p.to_json() for p in points]}, 0.0,
               [plot])


def _point_row(point: Any) -> dict:
    return {"tables": point.tables, "bits": point.bits, "probes": point.probes, "window": point.window,
            "recall@10": point.recall, "matched %": 100 * point.candidate_share,
            "rescored %": 100 * point.rescored_share, "clauses": point.clauses, "postings": point.postings,
            "cost": point.cost}


def _plot_sweep(points: list, path: Path) -> str:
    import matplotlib

    from pintext.bench.lsh_sim import CLAUSE_COST, RESCORE_COST

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    configs = sorted({(p.tables, p.bits) for p in points})
    for tables, bits in configs:
        mine = sorted((p for p in points if (p.tables, p.bits) == (tables, bits)), key=lambda p: p.cost)
        axes.scatter([p.cost for p in mine], [p.recall for p in mine], s=12, label=f"{tables}x{bits}")
    axes.set_xscale("log")
    axes.set_xlabel(f"cost per query (postings + {RESCORE_COST:g} x rescored + {CLAUSE_COST:g} x clauses), "
                    "log scale")
    axes.set_ylabel("recall@10 (replica)")
    axes.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    axes.legend(fontsize=7, ncol=2)
    axes.set_title("LSH grid: recall vs work per query")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


def section_node(ctx: Context, report: Report) -> None:
    from pintext.bench.node import open_node

    ctx.node = open_node()
    report.versions["opensearch"] = ctx.node.version
    report.notes.append(
        f"OpenSearch {ctx.node.version} at {ctx.node.url}, plugins {ctx.node.plugins}; "
        + (f"started by this run in {ctx.node.start_seconds:.0f} s (stopped at the end)" if ctx.node.started_here
           else "already running (left running)") + ".")


def section_ingest(ctx: Context, report: Report) -> None:
    from pintext.bench import ingest as ingest_bench

    dim = ready(ctx.corpus, "the corpus vectors").shape[1]
    markdown, data = ingest_bench.run(node_engine(ctx), ctx.node.url, ctx.pins_file, ctx.model_dir, bench_index(ctx),
                                      dim, len(ctx.ids))
    report.add("ingest", "Ingest", markdown, data, 0.0)


def bench_index(ctx: Context) -> str:
    return f"pintext-bench-{ctx.profile.name}"


def node_engine(ctx: Context) -> Any:
    """The OpenSearch engine over the benchmark's node: the sections write, administer and search through it."""
    from pintext.serving.opensearch import OpenSearchEngine

    return OpenSearchEngine(ctx.node.client)


def section_retrieval(ctx: Context, report: Report) -> None:
    from pintext.bench import retrieval
    from pintext.bench.lsh_sim import MAX_QUERY_CLAUSES
    from pintext.ingest.indexer import load_or_create_lsh
    from pintext.tokens.lsh import DEFAULT_BITS, DEFAULT_TABLES, RandomHyperplaneLSH

    corpus = ready(ctx.corpus, "the corpus vectors")
    lsh = load_or_create_lsh(ctx.model_dir, corpus.shape[1])
    choice = ctx.lsh_choice
    # OpenSearch refuses a bool query of more than 1024 clauses (indices.query.bool.max_clause_count).
    probes = sorted(p for p in {0, choice.probes, min(choice.probes + 1, lsh.bits)}
                    if lsh.tables * (1 + p) <= MAX_QUERY_CLAUSES)
    windows = sorted({choice.window, max(10, choice.window // 2), choice.window * 2})
    queries = ready(ctx.queries, "the query vectors")[:ctx.profile.node_queries]
    # On extra token fields of the same index: the project default (what an untuned install gets), and a
    # many-tables, many-bits config (few postings, many rare terms) so the cost fit can tell clauses from postings.
    others = [RandomHyperplaneLSH(dim=lsh.dim, tables=tables, bits=bits)
              for tables, bits in dict.fromkeys([(DEFAULT_TABLES, DEFAULT_BITS), (128, 14)])
              if (tables, bits) != (lsh.tables, lsh.bits)] if ctx.profile.extra_lsh_fields else []
    rows, extra = retrieval.run(node_engine(ctx), bench_index(ctx), lsh, ctx.ids, corpus, queries, probes,
                                windows, ctx.profile.exact_queries, hnsw=ctx.profile.hnsw, log=ctx.log,
                                other_configs=others, other_probes=(0, 1), other_windows=(choice.window,))
    plot = retrieval.plot(rows, ctx.out / "recall_vs_latency.png")
    exact = rows[0]
    tuned = next(row for row in rows if row["setting"].endswith(f"probes {choice.probes}, window {choice.window}"))
    hnsw_note = (f"Lucene HNSW: could not be measured ({extra['hnsw_error']})." if "hnsw_error" in extra else
                 f"Lucene HNSW index build (bulk + refresh) took {extra.get('hnsw_build_seconds', float('nan')):.1f} s."
                 if ctx.profile.hnsw else "Lucene HNSW: not run in this profile.")
    markdown = "\n".join([
        f"Real node, index `{bench_index(ctx)}` ({len(ctx.ids):,} pins, dim {corpus.shape[1]}, tuned LSH "
        f"{lsh.tables}x{lsh.bits}). {len(queries)} benchmark queries ({extra['exact_queries']} for the exact "
        "baseline, which scores every pin); recall@10 against numpy brute-force cosine. Latency is client-side "
        "wall time per request; QPS with 4 threads is queries / wall time with 4 concurrent clients. "
        "'candidates %' = pins sharing >= 1 table with the query, 'rescored %' = pins the knn_score script "
        "scores (min(window, candidates)); both from the replica, whose own recall is 'sim recall@10'.",
        "",
        retrieval.table(rows),
        "",
        hnsw_note,
        "",
        (f"Rows of {', '.join(extra['extra_configs'])} (the project default {DEFAULT_TABLES}x{DEFAULT_BITS} "
         "unless tuned, and a many-tables many-bits config) come from extra keyword fields added to the same index "
         "afterwards (bulk partial updates, "
         + ", ".join(f"{value['update_seconds']:.0f} s" for value in extra["extra_configs"].values())
         + "; not part of the ingest figures)." if extra.get("extra_configs") else ""),
        "'server took' is OpenSearch's own `took` (time inside the node); the rest of the client-side latency is "
        "HTTP, JSON and Python on a shared 2-core machine.",
        "",
        _cost_fit_text(extra.get("cost_fit")),
    ])
    report.add("retrieval", "Retrieval on the real node", markdown,
               {"rows": [{k: v for k, v in row.items()} for row in rows], **extra,
                "lsh": lsh.to_dict(), "tuned_setting": tuned["setting"]}, 0.0, [str(plot)])
    report.goal("Tuned LSH recall@10 vs exact (real node)", ">= 0.95", tuned["recall@10"], tuned["recall@10"] >= 0.95,
                tuned["setting"])
    speedup = tuned["p50 speed-up vs exact"]
    report.goal("Tuned LSH p50 vs exact knn_score script", ">= 10x faster", speedup, speedup >= 10,
                f"client p50 {tuned['p50 ms']:.1f} ms vs {exact['p50 ms']:.1f} ms; inside the node (took p50) "
                f"{tuned['server took p50 ms']:.1f} ms vs {exact['server took p50 ms']:.1f} ms = "
                f"{tuned['server took speed-up vs exact']:.2f}x")


def _cost_fit_text(fit: dict | None) -> str:
    """The tuner's cost model checked against this run's node timings."""
    from pintext.bench.lsh_sim import CLAUSE_COST, RESCORE_COST

    if not fit:
        return ""
    return (f"**Cost model check.** Server `took` p50 of the {fit['points']} LSH rows fitted by non-negative least "
            f"squares: {fit['base_ms']:.2f} ms + {fit['ms_per_clause']:.4f} ms per term clause + "
            f"{fit['ms_per_1000_postings']:.3f} ms per 1,000 postings + {fit['ms_per_1000_rescored']:.3f} ms per "
            f"1,000 rescored pins (R² {fit['r2']:.2f}), i.e. one clause ~ {fit['clause_in_postings']:.0f} postings "
            f"and one rescored pin ~ {fit['rescored_in_postings']:.1f} postings. The tuner's weights are "
            f"{CLAUSE_COST:.0f} and {RESCORE_COST:.0f} (bench/lsh_sim.py, calibrated on an earlier run here).")


def section_quality(ctx: Context, report: Report) -> None:
    from pintext.bench import quality

    markdown, data = quality.run(ctx.model_dir, ctx.pairs_dir)
    report.add("quality", "Quality vs cost (search task of the sample)", markdown, data, 0.0)


TOKENS_FOLDER = "token-families"  # the token-family section's own report, under the run's --out


def section_tokens(ctx: Context, report: Report) -> None:
    """Issue 11's grid on real text (bench/tokens.py, its own report in OUT/token-families): random-hyperplane and
    learned centroid tokens as served, Lucene HNSW and the exact script on one node, plus ingest and store."""
    from pintext.bench import tokens

    out = ctx.out / TOKENS_FOLDER
    argv = ["--pins", str(ctx.profile.tokens_pins), "--out", str(out)]
    if tokens.main(argv) != 0:
        raise RuntimeError(f"python -m pintext.bench.tokens {' '.join(argv)} failed (its output says why)")
    _add_tokens_section(report, json.loads((out / "results.json").read_text()), argv)


def _add_tokens_section(report: Report, data: dict, argv: list[str]) -> None:
    from pintext.bench import tokens

    data["reading"] = tokens.reading(data["results"], data["families"]) + tokens.goal_reading(data)
    rows = [{"method": r["method"], "setting": r["setting"], "recall@10": r["recall"], "p50 ms": r["p50_ms"],
             "server p50 ms": r["server_p50_ms"], "speed-up vs exact": r["speedup_vs_exact"]} for r in data["results"]]
    markdown = "\n".join([
        f"`python -m pintext.bench.tokens {' '.join(argv)}`: {data['corpus']['pins']:,} pins of real product text "
        f"({data['corpus']['kind']}), {data['corpus']['dim']}-d vectors, {data['corpus']['queries']} real queries, "
        f"OpenSearch {data['node']['version']}. Whole report (tuning costs, indexes, ingest): "
        f"[{TOKENS_FOLDER}/report.md]({TOKENS_FOLDER}/report.md).", "",
        markdown_table(rows), "",
        f"![recall vs latency]({TOKENS_FOLDER}/recall_vs_latency.png)", "",
        *data["reading"]])
    report.add("tokens", "Token families on real text vs HNSW (bench/tokens.py)", markdown,
               {"report": f"{TOKENS_FOLDER}/results.json", "results": data["results"], "reading": data["reading"]}, 0.0)
    _token_goals(report, data)


def _token_goals(report: Report, data: dict) -> None:
    """Issue 11's targets as goals of the run."""
    from pintext.bench.tokens import COUNTING, GOAL_RECALL, SAME_RECALL, token_path_against_hnsw

    best, rival = token_path_against_hnsw(data["results"])
    token_recalls = [r["recall"] for r in data["results"]
                     if r["method"].startswith("PinText") and COUNTING not in r["setting"]]
    report.goal("Token path recall@10 (real node, real text)", f">= {GOAL_RECALL}",
                best["recall"] if best else max(token_recalls), best is not None,
                f"{best['method']}, {best['setting']}" if best else "no token setting reached it")
    if best is None:
        return
    report.goal("Token path p50 vs exact script", ">= 10x faster", best["speedup_vs_exact"],
                best["speedup_vs_exact"] >= 10, f"{best['p50_ms']:.1f} ms")
    report.goal("Token path p50 vs HNSW at the same recall", "<= 1x", rival and best["p50_ms"] / rival["p50_ms"],
                None if rival is None else best["p50_ms"] <= rival["p50_ms"],
                f"PinText {best['recall']:.3f} at {best['p50_ms']:.1f} ms; HNSW {rival['setting']} "
                f"{rival['recall']:.3f} at {rival['p50_ms']:.1f} ms" if rival
                else f"no HNSW setting measured comes within {SAME_RECALL} of that recall")


CATALOGUE_FOLDER = "catalogue"  # the catalogue section's own report, under the run's --out
CATALOGUE_CORPUS_PINS = 1_000_000  # the catalogue is built once at this size; smaller runs take a seeded sample


def section_catalogue(ctx: Context, report: Report) -> None:
    """Issue 20's "Done when" on the real Home Depot titles and the catalogue-like corpus (bench/catalogue.py, its
    own report in OUT/catalogue): PinText as served vs HNSW m 16/32 and the exact script, store and ingest. Needs
    the real data folder, a Home Depot model and its held-out queries (see `python -m pintext.bench.catalogue`)."""
    from pintext.bench import catalogue

    corpus = ctx.work / "catalogue" / "pins.jsonl"
    if not corpus.is_file() and catalogue.main(["build", "--pins", str(CATALOGUE_CORPUS_PINS), "--out",
                                                str(corpus)]) != 0:
        raise RuntimeError("python -m pintext.bench.catalogue build failed (its output says why)")
    out = ctx.out / CATALOGUE_FOLDER
    argv = ["run", "--catalogue", str(corpus), "--catalogue-pins", str(ctx.profile.catalogue_pins), "--out", str(out),
            "--work", str(ctx.work / "catalogue")]
    if catalogue.main(argv) != 0:
        raise RuntimeError(f"python -m pintext.bench.catalogue {' '.join(argv)} failed (its output says why)")
    data = json.loads((out / "results.json").read_text())
    rows = [{"corpus": run["label"], "target": verdict["target"], "measured": verdict["measured"],
             "met": "yes" if verdict["met"] else "NO"} for run in data["sets"] for verdict in run["verdicts"]]
    link = f"[{CATALOGUE_FOLDER}/report.md]({CATALOGUE_FOLDER}/report.md)"
    report.add(CATALOGUE_FOLDER, "Issue 20 on real titles and a catalogue-like corpus (bench/catalogue.py)",
               f"Whole report: {link}.\n\n" + markdown_table(rows), {"report": f"{CATALOGUE_FOLDER}/results.json"},
               0.0)


def rerender_tokens(out: Path) -> None:
    """Write OUT/REPORT.md again from OUT/report.json and OUT/token-families/results.json (a run of the tokens
    section alone: `--only tokens`), with today's reading of the same figures; nothing is measured again."""
    from pintext.bench import tokens

    saved = json.loads((out / "report.json").read_text())
    if [section["key"] for section in saved["sections"]] != ["tokens"]:
        raise ValueError(f"{out}/report.json is not a run of the tokens section alone")
    folder = out / TOKENS_FOLDER
    tokens.main(["--render", "--out", str(folder)])
    report = Report(command=saved["command"], profile=saved["profile"], params=saved["params"],
                    machine=saved["machine"], versions=saved["versions"], notes=saved["notes"],
                    started_at=saved["started_at"], seconds=saved["seconds"])
    data = json.loads((folder / "results.json").read_text())
    _add_tokens_section(report, data, data["command"].removeprefix("python -m pintext.bench.tokens ").split())
    report.sections[-1].update(seconds=saved["sections"][0]["seconds"], load=saved["sections"][0].get("load"))
    report.write(out)  # the run's own end load stays in the header (write() stamps one only when missing)


SECTIONS: list[tuple[str, str, Callable[[Context, Report], None], tuple[str, ...]]] = [
    # key, title, function, sections it needs
    ("synth", "Generator throughput", section_synth, ()),
    ("corpus", "Benchmark corpus", section_corpus, ()),
    ("train", "Training on CPU", section_train, ()),
    ("encode", "Encoding speed", section_encode, ("corpus", "train")),
    ("tune", "LSH tuning", section_tune, ("encode",)),
    ("node", "OpenSearch node", section_node, ()),
    ("ingest", "Ingest", section_ingest, ("node", "tune")),
    ("retrieval", "Retrieval on the real node", section_retrieval, ("ingest",)),
    ("quality", "Quality vs cost", section_quality, ("train",)),
    ("tokens", "Token families on real text vs HNSW", section_tokens, ()),
    ("catalogue", "Issue 20 on real titles and a catalogue-like corpus", section_catalogue, ()),
]
ON_REQUEST = {"catalogue"}  # sections run only when `--only` names them (they need data outside the repository)


def run(profile_name: str, out: Path, only: set[str] | None = None, log: Callable[[str], None] = print) -> Report:
    """Run the profile's sections (all, or `only` and what they need) and write the report into `out`."""
    from pintext.paths import pintext_home

    profile = PROFILES[profile_name]
    work = pintext_home() / "bench" / profile.name
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(profile, work, repo_root() / "data" / "sample", out, log)
    report = Report(command=command_line(), profile=profile.name, params=asdict(profile))
    done: set[str] = set()
    began = time.perf_counter()
    try:
        for key, title, function, needs in SECTIONS:
            if only and key not in only and not any(key in _needs_of(other) for other in only):
                continue
            if key in ON_REQUEST and not (only and key in only):
                continue
            missing = [need for need in needs if need not in done]
            if missing:
                report.failed(key, title, f"skipped: {', '.join(missing)} did not complete", 0.0)
                continue
            log(f"[{time.perf_counter() - began:6.0f} s] {title}")
            load_at_start = load_average()
            with stopwatch() as timer:
                try:
                    function(ctx, report)
                    done.add(key)
                except Exception as error:  # noqa: BLE001 - one failed section must not lose the others
                    log(traceback.format_exc())
                    report.failed(key, title, f"{type(error).__name__}: {str(error)[:800]}", timer["seconds"])
                    continue
            if report.sections and report.sections[-1]["key"] == key:
                report.sections[-1]["seconds"] = round(timer["seconds"], 1)
                report.sections[-1]["load"] = load_at_start
    finally:
        if ctx.node is not None:
            outcome = ctx.node.close()
            if outcome:
                report.notes.append(f"managed node stopped at the end: {outcome}")
        report.seconds = time.perf_counter() - began
        # A goal's section that was selected but failed is reported as unmeasured; one left out by --only is not.
        selected = {key for key, *_ in SECTIONS if not only or key in only}
        for key in [goal for goal in ("encode", "retrieval") if goal in selected and goal not in done]:
            report.goal(f"{key} goals", "see section", None, None, "section did not complete")
        _add_load_note(report)
        _copy_plots(report, out)
        report.write(out)
    return report


def _needs_of(key: str) -> set[str]:
    """Every section `key` depends on, transitively."""
    needs = {need for k, _, _, deps in SECTIONS if k == key for need in deps}
    for need in list(needs):
        needs |= _needs_of(need)
    return needs


def _add_load_note(report: Report) -> None:
    """Say how busy the machine was: the figures of a shared machine move with its load."""
    cores = report.machine.get("cores") or 1
    loads = [section["load"][0] for section in report.sections if section.get("load")]
    loads += (report.machine.get("load_average_at_start") or [])[:1]
    if not loads:
        return
    report.notes.append(
        f"the 1-minute load average ranged {min(loads):.1f}-{max(loads):.1f} on {cores} cores during this run "
        "(per section in its footer). It counts this run's own client and node (up to about 2) and anything else "
        "running: on the development machine, other engineers' builds and tests. Absolute rates move with it; "
        "ratios within a section are measured back to back and hold better.")


def _copy_plots(report: Report, out: Path) -> None:
    for section in report.sections:
        for index, plot in enumerate(section["plots"]):
            source = Path(plot)
            if source.exists() and source.parent.resolve() != out.resolve():
                shutil.copy(source, out / source.name)
            section["plots"][index] = source.name


if __name__ == "__main__":  # python -m pintext.bench.run --rerender-tokens OUT
    if sys.argv[1:2] != ["--rerender-tokens"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m pintext.bench.run --rerender-tokens OUT")
    rerender_tokens(Path(sys.argv[2]))
