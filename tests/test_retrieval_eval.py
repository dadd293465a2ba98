"""`pintext eval-retrieval`: the metrics and judgments readers (unit), and the whole command on the real node.

The integration test cross-checks our NDCG@10, Recall@100 and MRR@10 against OpenSearch's own `_rank_eval`
(dcg normalize=true, recall, mean_reciprocal_rank) on the same BM25 requests, value by value.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from pintext.evaluation import concrete_index
from pintext.schemas import LocatedRecordError
from pintext.trainer.retrieval import (
    Judgments,
    evaluate_rankings,
    load_judgments,
    mrr_at_k,
    ndcg_at_k,
    read_csv_judgments,
    read_pairs_judgments,
    read_trec_qrels,
    recall_at_k,
    top_k_indices,
)
from tests.factories import synthetic_pairs, write_csv
from tests.fixtures_cli import run_pintext

# ---- metrics ---------------------------------------------------------------------------------------------------


def test_ndcg_uses_exponential_gain_log2_discount_and_the_ideal_of_all_judged_docs():
    grades = {"a": 3, "c": 2, "d": 1, "x": 0}
    ranking = ["a", "b", "c"]  # d (grade 1) is judged but not retrieved: it still counts in the ideal
    dcg = 7 / math.log2(2) + 0 + 3 / math.log2(4)
    ideal = 7 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranking, grades) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "c", "d"], grades) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], {"x": 0}) == 0.0


def test_ndcg_only_counts_the_top_k():
    grades = {"deep": 1}
    assert ndcg_at_k([f"n{i}" for i in range(10)] + ["deep"], grades) == 0.0
    assert ndcg_at_k([f"n{i}" for i in range(9)] + ["deep"], grades) == pytest.approx(1 / math.log2(11))


def test_recall_and_mrr():
    grades = {"a": 1, "b": 2, "c": 0}
    assert recall_at_k(["c", "b", "z"], grades) == 0.5
    assert recall_at_k(["a", "b"], grades, k=1) == 0.5
    assert mrr_at_k(["c", "z", "b"], grades) == pytest.approx(1 / 3)
    assert mrr_at_k([f"n{i}" for i in range(10)] + ["a"], grades) == 0.0  # first relevant at rank 11


def test_means_cover_queries_with_a_relevant_doc_and_a_missing_ranking_scores_zero():
    judged = Judgments("test")
    judged.add("q1", "one", "a", 1)
    judged.add("q2", "two", "b", 2)
    judged.add("q3", "three", "c", 0)  # nothing relevant: not evaluated
    result = evaluate_rankings({"q1": ["a"], "q3": ["c"]}, judged)
    assert result["queries"] == 2 and set(result["per_query"]) == {"q1", "q2"}
    assert result["mean"] == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def test_top_k_breaks_ties_by_position():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9, 0.5])
    assert top_k_indices(scores, 4).tolist() == [1, 4, 0, 2]
    assert top_k_indices(scores, 10).tolist() == [1, 4, 0, 2, 5, 3]
    assert top_k_indices(np.array([]), 3).tolist() == []


# ---- judgments readers -----------------------------------------------------------------------------------------


def test_csv_judgments_group_by_query_text_and_keep_the_highest_duplicate(tmp_path):
    path = write_csv(tmp_path / "j.csv", [["query", "doc_id", "grade"], ["red cake", "p1", "2"],
                                          ["red cake", "p2", "0"], ["blue sofa", "p3", "1"], ["red cake", "p1", "3"],
                                          ["blue sofa", "p4", "-1"]])
    judged = load_judgments(path)
    assert judged.queries == {"red cake": "red cake", "blue sofa": "blue sofa"}
    assert judged.grades == {"red cake": {"p1": 3, "p2": 0}, "blue sofa": {"p3": 1, "p4": 0}}
    assert (judged.duplicates, judged.negative_grades, judged.judgment_count) == (1, 1, 4)


def test_csv_judgments_tolerate_a_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("\ufeffquery,doc_id,grade\nred cake,p1,1\n", encoding="utf-8")
    assert read_csv_judgments(path).grades == {"red cake": {"p1": 1}}


@pytest.mark.parametrize("rows, where", [
    ([["query", "doc", "grade"], ["q", "p1", "1"]], ":1: field 'doc_id': missing from the header"),
    ([["query", "doc_id", "grade"], ["q", "p1", "1"], ["q", "p2", "high"]], ":3: field 'grade': not an integer"),
    ([["query", "doc_id", "grade"], ["q", "", "1"]], ":2: field 'doc_id': missing"),
    ([["query", "doc_id", "grade"], ["", "p1", "1"]], ":2: field 'query': missing"),
    ([["query", "doc_id", "grade"], ["q", "p1", "1", "extra"]], ":2: field '<record>': more fields"),
])
def test_csv_errors_name_file_line_and_field(tmp_path, rows, where):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(LocatedRecordError) as caught:
        read_csv_judgments(path)
    assert str(caught.value).startswith(str(path)) and where in str(caught.value)


def test_trec_qrels_take_their_texts_from_the_queries_file(tmp_path):
    (tmp_path / "q.tsv").write_text("1\tred velvet cake\n2\tblue sofa\n", encoding="utf-8")
    (tmp_path / "qrels").write_text("1 0 p1 2\n1 0 p2 0\n\n2 Q0 p3 1\n", encoding="utf-8")
    judged = load_judgments(tmp_path / "qrels", tmp_path / "q.tsv")
    assert judged.queries == {"1": "red velvet cake", "2": "blue sofa"}
    assert judged.grades == {"1": {"p1": 2, "p2": 0}, "2": {"p3": 1}}


@pytest.mark.parametrize("qrels, where", [("1 0 p1 1\n9 0 p2 1\n", ":2: field 'qid': not in the queries file"),
                                          ("1 0 p1\n", ":1: field '<record>': not a qrels line"),
                                          ("1 0 p1 x\n", ":1: field 'grade': not an integer")])
def test_trec_errors_name_file_line_and_field(tmp_path, qrels, where):
    (tmp_path / "q.tsv").write_text("1\tred velvet cake\n", encoding="utf-8")
    (tmp_path / "qrels").write_text(qrels, encoding="utf-8")
    with pytest.raises(LocatedRecordError, match=where):
        read_trec_qrels(tmp_path / "qrels", tmp_path / "q.tsv")


def test_qrels_without_a_queries_file_are_refused(tmp_path):
    (tmp_path / "qrels").write_text("1 0 p1 1\n", encoding="utf-8")
    with pytest.raises(LocatedRecordError, match="--queries"):
        load_judgments(tmp_path / "qrels")


def test_pairs_folder_search_split_gives_anchor_to_positive_id_grade_1(tmp_path):
    from datasets import load_from_disk

    folder = synthetic_pairs(tmp_path / "pairs", n_topics=3, pins_per_topic=5, pairs_per_task=60, seed=1)
    test = load_from_disk(str(folder / "search"))["test"]
    judged = read_pairs_judgments(folder)
    assert judged.judgment_count == len(set(zip(test["anchor"], test["positive_id"])))
    anchor, positive = test["anchor"][0], test["positive_id"][0]
    assert judged.queries[anchor] == anchor and judged.grades[anchor][positive] == 1
    assert read_pairs_judgments(folder, split="validation").grades != judged.grades
    with pytest.raises(LocatedRecordError, match="no such split"):
        read_pairs_judgments(folder, split="nope")


def test_judged_docs_absent_from_the_corpus_are_counted():
    judged = Judgments("test")
    judged.add("q1", "one", "a", 1)
    judged.add("q1", "one", "gone", 2)
    judged.add("q2", "two", "gone", 1)
    judged.add("q2", "two", "lost", 0)
    kept, absent = judged.restricted_to({"a", "b"})
    assert kept.grades == {"q1": {"a": 1}}
    assert absent == {"judgments_absent_from_corpus": 3, "relevant_judgments_absent_from_corpus": 2,
                      "docs_absent_from_corpus": 2, "queries_left_without_relevant_doc": 1}


def test_the_pure_parts_and_the_command_module_do_not_import_torch():
    code = ("import sys, pintext.trainer.retrieval, pintext.cli.retrieval; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_bad_judgments_row_is_one_clear_line(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [["query", "doc_id", "grade"], ["q", "p1", "one"]])
    (tmp_path / "model").mkdir()
    (tmp_path / "pins.jsonl").write_text('{"id": "p1", "title": "x"}\n', encoding="utf-8")
    result = run_pintext(["eval-retrieval", "--model", str(tmp_path / "model"), "--corpus",
                          str(tmp_path / "pins.jsonl"), "--judgments", str(path), "--out",
                          str(tmp_path / "out")])
    assert result.code == 2
    assert f"{path}:2: field 'grade': not an integer grade" in " ".join(result.output.split())
    assert "Traceback" not in result.output


# ---- the whole command on the real node ------------------------------------------------------------------------


def judged_queries(pins: list[dict], count: int) -> list[list[str]]:
    """Two-word queries with >= 10 BM25 matches; grade = query words in the title (2), else in the text (1)."""
    from tests.factories import WORDS

    rng = np.random.default_rng(4)
    rows: list[list[str]] = []
    while len({row[0] for row in rows}) < count:
        query = list(rng.choice(WORDS, size=2, replace=False))
        matching = [pin for pin in pins if set(query) & set(f"{pin['title']} {pin['description']}".split())]
        if len(matching) < 10:
            continue
        for pin in matching:
            rows.append([" ".join(query), pin["id"], "2" if set(query) & set(pin["title"].split()) else "1"])
        unmatched = next(pin for pin in pins if pin not in matching)
        rows.append([" ".join(query), unmatched["id"], "0"])  # a judged non-relevant doc
    return rows


@pytest.mark.opensearch
def test_eval_retrieval_on_the_real_node(opensearch, opensearch_url, opensearch_index_name, tmp_path):
    from pintext.evaluation import bm25_request
    from pintext.encoder import Encoder
    from pintext.pin_vectors import pin_vectors
    from tests.factories import make_model, make_pins, write_pins_file

    model_dir = make_model(tmp_path / "model")
    pins = make_pins(300, seed=2)
    write_pins_file(tmp_path / "pins.jsonl", pins, with_bad_lines=False)
    rows = judged_queries(pins, 12) + [["w001 w002", "not-in-corpus", "1"]]
    write_csv(tmp_path / "judgments.csv", [["query", "doc_id", "grade"], *rows])
    args = ["eval-retrieval", "--model", str(model_dir), "--corpus", str(tmp_path / "pins.jsonl"), "--judgments",
            str(tmp_path / "judgments.csv"), "--out", str(tmp_path / "out"), "--index", opensearch_index_name,
            "--url", opensearch_url, "--json"]
    result = run_pintext(args)
    result.ok()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (tmp_path / "out" / "retrieval.png").stat().st_size > 0
    report = (tmp_path / "out" / "report.md").read_text()
    version = opensearch.info()["version"]["number"]
    assert "| bm25 |" in report and "| hybrid |" in report and version in report
    assert results["index"] == {**results["index"], "name": opensearch_index_name, "reused": False, "docs": 300}
    assert results["judgments"]["absent"]["docs_absent_from_corpus"] == 1
    systems = results["systems"]
    assert list(systems) == ["bm25", "exact", "served", "hybrid"]
    for name, system in systems.items():
        assert system["queries"] == 12 and len(system["per_query"]) == 12, name
        assert all(0.0 <= value <= 1.0 for value in system["mean"].values()), name
    assert systems["bm25"]["mean"]["ndcg@10"] > 0.5  # the grades were made from word matches
    assert results["search_commands"]["served"]["modes"] == {"pintext": 12}
    assert results["search_commands"]["hybrid"]["modes"] == {"hybrid": 12}

    # Our metrics equal OpenSearch's _rank_eval on the very same BM25 requests, query by query.
    judged = read_csv_judgments(tmp_path / "judgments.csv")
    specs = {"ndcg@10": {"dcg": {"k": 10, "normalize": True}}, "recall@100": {"recall": {"k": 100}},
             "mrr@10": {"mean_reciprocal_rank": {"k": 10}}}
    for metric, spec in specs.items():
        requests = [{"id": query, "request": bm25_request(query),
                     "ratings": [{"_index": concrete_index(opensearch, opensearch_index_name), "_id": doc, "rating": grade}
                                 for doc, grade in judged.grades[query].items()]}
                    for query in systems["bm25"]["per_query"]]
        theirs = opensearch.rank_eval(index=opensearch_index_name, body={"requests": requests, "metric": spec})
        for query, ours in systems["bm25"]["per_query"].items():
            assert ours[metric] == pytest.approx(theirs["details"][query]["metric_score"], abs=1e-12), (metric, query)
        assert systems["bm25"]["mean"][metric] == pytest.approx(theirs["metric_score"], abs=1e-12)
        assert results["rank_eval_check"][metric]["max_abs_diff"] < 1e-12
        assert results["rank_eval_check"][metric]["queries_compared"] == 12

    # Exact = brute-force cosine over the corpus, ties by pin id.
    encoder = Encoder.load(model_dir)
    vectors = pin_vectors(encoder, pins)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.array([pin["id"] for pin in pins])
    for query, ours in systems["exact"]["per_query"].items():
        vector = encoder.encode([query])[0]
        scores = vectors @ (vector / np.linalg.norm(vector))
        ranking = list(ids[np.lexsort((ids, -scores))][:100])
        assert ours["ndcg@10"] == pytest.approx(ndcg_at_k(ranking, judged.grades[query]), abs=1e-9)
        assert ours["recall@100"] == pytest.approx(recall_at_k(ranking, judged.grades[query]), abs=1e-9)

    again = run_pintext([*args, "--cleanup"])
    again.ok()
    rerun = json.loads((tmp_path / "out" / "results.json").read_text())
    assert rerun["index"]["reused"] is True and rerun["index"]["deleted"] is True
    assert {name: s["mean"] for name, s in rerun["systems"].items()} == {name: s["mean"] for name, s in systems.items()}
    assert not opensearch.indices.exists(index=opensearch_index_name)


# ---- the real-data runner --------------------------------------------------------------------------------------


def test_real_eval_skips_cleanly_without_the_shared_data(tmp_path, capsys):
    from pintext.bench.real_eval import main

    assert main(["--datasets", "crowdflower,bestbuy", "--shared", str(tmp_path / "absent")]) == 0
    said = capsys.readouterr().out
    assert f"no real data at {tmp_path / 'absent'}" in said and "skipping the real data sets" in said


def test_real_mtl_skips_cleanly_without_the_shared_data(tmp_path, capsys):
    from pintext.bench.real_mtl import main

    assert main(["--shared", str(tmp_path / "absent"), "--work", str(tmp_path / "work")]) == 0
    assert "skipping the real data sets" in capsys.readouterr().out
    assert not (tmp_path / "work").exists()


def test_real_eval_aggregates_mean_and_sample_std_over_splits():
    from pintext.bench.real_eval import aggregate

    runs = [{"means": {"bm25": {"ndcg@10": v, "recall@100": 0.5, "mrr@10": 1.0}}} for v in (0.2, 0.4, 0.6)]
    summary = aggregate([*runs, {"split": 3, "error": "train failed"}])["bm25"]  # a failed split is left out
    assert summary["ndcg@10"]["mean"] == pytest.approx(0.4) and summary["ndcg@10"]["std"] == pytest.approx(0.2)
    assert summary["recall@100"] == {"mean": 0.5, "std": 0.0, "values": [0.5, 0.5, 0.5]}
    assert aggregate([{"split": 0, "error": "x"}]) == {}


def test_real_eval_report_names_a_failed_split():
    from pintext.bench.real_eval import dataset_section

    lines = dataset_section("bestbuy", {"summary": {}, "runs": [{"split": 1, "error": "search refused"}]})
    assert "- **split 1 failed**: search refused" in lines


def test_every_system_ranks_as_deep_as_recall_counts():
    from pintext.evaluation import RANKING_DEPTH
    from pintext.trainer.retrieval import RECALL_K

    assert RANKING_DEPTH == RECALL_K
