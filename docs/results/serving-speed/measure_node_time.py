"""Figures of docs/results/serving-speed/report.md: where a served query's node time goes, and whether the k-NN
plugin's own exact search scores the same candidates faster than the `knn_score` script PinText sends.

1. Profile: the cosine-only body PinText sends for k = 10 (`Service.dsl`: the probed tokens as a `terms` filter
   inside the exact `knn_score` script) with `"profile": true`, median microseconds per phase over the queries.
2. Script vs `knn` query: the same filter and query vector as a k-NN `knn` query (`k` = 10, `filter` = the tokens),
   which scores the filtered pins exactly on an index with no graph (`approximate_threshold: -1`). Faiss refuses
   `cosinesimil` on byte vectors, so the copy (`INDEX-ip`, a `_reindex` of INDEX) declares `innerproduct`; what is
   compared is speed (took and wall, interleaved passes) and, for the record, how far inner product over PinText's
   per-vector-scaled int8 values is from the cosine ranking (overlap of the top 10).

    python docs/results/serving-speed/measure_node_time.py MODEL QRELS.csv URL INDEX [QUERIES] [PASSES] > out.json
"""

from __future__ import annotations

import copy
import csv
import json
import statistics
import sys
import time
from pathlib import Path

from opensearchpy import OpenSearch

from pintext import open as open_pintext


def phases(node: dict, into: dict, depth: int = 0) -> None:
    name = "  " * depth + node["type"]
    into.setdefault(name, {}).setdefault("time", []).append(node["time_in_nanos"])
    for phase, nanos in node["breakdown"].items():
        if not phase.endswith("_count"):
            into[name].setdefault(phase, []).append(nanos)
    for child in node.get("children", []):
        phases(child, into, depth + 1)


def profile(client: OpenSearch, index: str, bodies: list[dict]) -> dict:
    found: dict = {}
    for body in bodies:
        shard = client.search(index=index, body={**body, "profile": True})["profile"]["shards"][0]
        for search in shard["searches"]:
            for query in search["query"]:
                phases(query, found)
            for collector in search["collector"]:
                found.setdefault("collector", {}).setdefault("time", []).append(collector["time_in_nanos"])
        for fetch in shard.get("fetch", []):
            found.setdefault("fetch", {}).setdefault("time", []).append(fetch["time_in_nanos"])
    return {name: {phase: round(statistics.median(values) / 1000) for phase, values in times.items()
                   if statistics.median(values) >= 10_000} for name, times in found.items()}


def knn_body(script_body: dict, k: int) -> dict:
    scored = script_body["query"]["script_score"]
    return {"size": k, "_source": script_body["_source"], "track_total_hits": False,
            "query": {"knn": {"vector": {"vector": scored["script"]["params"]["query_value"], "k": k,
                                         "filter": scored["query"]}}}}


def inner_product_copy(client: OpenSearch, index: str) -> str:
    concrete = next(iter(client.indices.get(index=index)))
    mapping = copy.deepcopy(client.indices.get_mapping(index=concrete)[concrete]["mappings"])
    mapping["properties"]["vector"]["space_type"] = "innerproduct"
    settings = {"index": {"number_of_shards": 1, "number_of_replicas": 0, "knn": True,
                          "knn.advanced.approximate_threshold": -1, "knn.derived_source.enabled": True}}
    target = f"{index}-ip"
    if client.indices.exists(index=target):
        client.indices.delete(index=target)
    client.indices.create(index=target, body={"settings": settings, "mappings": mapping})
    client.reindex(body={"source": {"index": concrete}, "dest": {"index": target}}, refresh=True,
                   wait_for_completion=True, request_timeout=600)
    client.indices.forcemerge(index=target, max_num_segments=1, request_timeout=600)
    return target


def timed(client: OpenSearch, index: str, bodies: list[dict]) -> dict:
    took, wall = [], []
    for body in bodies:
        began = time.perf_counter()
        answer = client.search(index=index, body=body)
        wall.append((time.perf_counter() - began) * 1000)
        took.append(answer["took"])
    return {"took_mean_ms": round(statistics.mean(took), 2), "wall_p50_ms": round(statistics.median(wall), 2)}


def main(argv: list[str]) -> int:
    model, qrels, url, index = Path(argv[0]), argv[1], argv[2], argv[3]
    limit = int(argv[4]) if len(argv) > 4 else 300
    passes = int(argv[5]) if len(argv) > 5 else 4
    with open(qrels, encoding="utf-8", newline="") as handle:
        texts = list(dict.fromkeys(row["query"] for row in csv.DictReader(handle)))[:limit]
    service = open_pintext(model, url=url, index=index)
    client = OpenSearch(url)
    scripts = [service.dsl(text, k=10).requests[-1][-1] for text in texts]
    knns = [knn_body(body, 10) for body in scripts]
    copy_index = inner_product_copy(client, index)
    for body in scripts[:50]:
        client.search(index=index, body=body)
    for body in knns[:50]:
        client.search(index=copy_index, body=body)
    overlap = 0
    for script, knn in zip(scripts[:100], knns[:100]):
        cosine = {hit["_id"] for hit in client.search(index=index, body=script)["hits"]["hits"]}
        inner = {hit["_id"] for hit in client.search(index=copy_index, body=knn)["hits"]["hits"]}
        overlap += len(cosine & inner)
    rounds = [{"pass": number + 1, "script": timed(client, index, scripts), "knn": timed(client, copy_index, knns)}
              for number in range(passes)]
    client.indices.delete(index=copy_index)
    json.dump({"queries": len(texts), "profile_median_us": profile(client, index, scripts[:100]),
               "overlap_at_10": round(overlap / (10 * min(100, len(scripts))), 3), "passes": rounds}, sys.stdout,
              indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
