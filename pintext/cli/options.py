"""The options the serving commands share (model, index, engine and how to reach it), and how they open the
Python API's `PinText` (`pintext.open`): the commands parse options, call the API and print what it returns."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pintext.api.connection import DEFAULT_INDEX, DEFAULT_LOCAL_DIR

__all__ = ["DEFAULT_INDEX", "DEFAULT_LOCAL_DIR", "EngineName", "FusionMethod", "open_pintext", "cli_notes"]


class FusionMethod(str, Enum):
    """The values of `pintext.fusion.FUSION_METHODS` (tests/test_hybrid.py keeps them equal)."""

    union = "union"
    rrf = "rrf"
    blend = "blend"


class EngineName(str, Enum):
    auto = "auto"
    opensearch = "opensearch"
    elasticsearch = "elasticsearch"
    local = "local"


ModelOption = Annotated[Optional[Path], typer.Option("--model", envvar="PINTEXT_MODEL",
                                                     help="Model folder (with runtime/); default $PINTEXT_MODEL.")]
IndexOption = Annotated[str, typer.Option("--index", help="Index name users search (an alias over one index per "
                                                          "model).")]
UrlOption = Annotated[Optional[str], typer.Option("--url", help="Engine URL (OpenSearch: a comma-separated list "
                                                                "of a cluster's nodes fails over between them); "
                                                                "default $OPENSEARCH_URL (or $ELASTICSEARCH_URL), "
                                                                "else the managed local node.")]
UserOption = Annotated[Optional[str], typer.Option("--user", envvar=["OPENSEARCH_USER", "ELASTICSEARCH_USER"],
                                                   help="Basic-auth user; default $OPENSEARCH_USER "
                                                        "(else $ELASTICSEARCH_USER).")]
PasswordOption = Annotated[Optional[str], typer.Option("--password", envvar=["OPENSEARCH_PASSWORD",
                                                                             "ELASTICSEARCH_PASSWORD"],
                                                       show_envvar=False, help="Basic-auth password; default "
                                                       "$OPENSEARCH_PASSWORD (else $ELASTICSEARCH_PASSWORD).")]
CaCertsOption = Annotated[Optional[Path], typer.Option("--ca-certs", exists=True, dir_okay=False,
                                                       help="CA bundle (PEM) to verify the node's TLS certificate "
                                                            "(`pintext opensearch up --secure` prints its CA).")]
InsecureOption = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates (warns once).")]
EngineOption = Annotated[EngineName, typer.Option("--engine", "--backend", envvar="PINTEXT_ENGINE",
                                                  help="Serving engine: auto (ask the node at --url), opensearch, "
                                                       "elasticsearch, or the local on-disk index.")]
LocalDirOption = Annotated[Path, typer.Option("--local-dir", help="Folder of the local engine's indices.")]
KOption = Annotated[int, typer.Option("--k", min=1, help="Hits to return.")]
WindowOption = Annotated[Optional[int], typer.Option("--window", min=1, help="First-stage hits rescored by exact "
                                                     "cosine; default: the index's tuned window.")]
ProbesOption = Annotated[Optional[int], typer.Option("--probes", min=0, help="Extra multi-probe buckets per LSH "
                                                     "table; default: the index's tuned probes.")]
FilterOption = Annotated[Optional[list[str]], typer.Option("--filter", help="FIELD=VALUE on a keyword field (id, "
                                                           "board, annotations, link); repeat: OR within a field, "
                                                           "AND across fields. Applied in the first stage.")]
FilterJsonOption = Annotated[Optional[list[str]], typer.Option("--filter-json", help="A raw query DSL filter "
                                                               "clause (JSON), AND-ed with the others.")]
TargetRecallOption = Annotated[float, typer.Option("--target-recall", min=0.0, max=1.0,
                                                   help="When the index is created: tune LSH for this recall@10 "
                                                        "vs exact cosine.")]
NoTuneOption = Annotated[bool, typer.Option("--no-tune", help="When the index is created: skip tuning, use "
                                                              "the default LSH (64x8 bits, window 500).")]
TokensOption = Annotated[Optional[str], typer.Option(
    "--tokens", help="When the index is created: its token family, lsh (random hyperplanes), kmeans (learned "
                     "centroids, fitted on the corpus) or auto (tune both, keep the cheaper at the target recall); "
                     "default auto.")]
VectorTypeOption = Annotated[Optional[str], typer.Option(
    "--vector-type", help="When the index is created: what its vector field holds, int8 (one byte a dimension, "
                          "scaled per pin; the engines score it by exact cosine, docs/serving.md) or float32; "
                          "default int8. An existing index keeps its own.")]
TuneQueriesOption = Annotated[Optional[Path], typer.Option("--tune-queries", exists=True, dir_okay=False,
                                                           help="Query texts to tune on (one JSON line each); "
                                                                "default: sampled pins' titles cut to 3-5 words.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ExplainOption = Annotated[bool, typer.Option("--explain", help="Show matching tokens and first-stage/final scores.")]
TimeoutOption = Annotated[Optional[float], typer.Option(
    "--timeout", envvar="PINTEXT_TIMEOUT", min=0.1,
    help="Seconds to wait for the engine's answer to each request, and how long a write keeps re-sending to a "
         "node that does not answer before the command gives up (default 30 s per request, 5 re-sends).")]


ShardsOption = Annotated[int, typer.Option("--shards", min=1, help="Primary shards (fixed once the index exists).")]
ReplicasOption = Annotated[Optional[int], typer.Option(
    "--replicas", min=0, help="Replicas of each shard; > 0 needs that many more data nodes to go green. Default: 1 "
                              "on a cluster of 2 or more data nodes, 0 on a single node.")]


FusionOption = Annotated[Optional[FusionMethod], typer.Option("--fusion", help="With --hybrid: union (every pin "
                                                              "either side found, scored by PinText, plus BM25's "
                                                              "share), rrf or blend; default MODEL/hybrid.json, "
                                                              "else union.")]
FusionWeightOption = Annotated[Optional[float], typer.Option("--fusion-weight", min=0.0, max=1.0,
                                                             help="With --hybrid: PinText's share (BM25 gets "
                                                                  "the rest); default MODEL/hybrid.json, else 0.95.")]
DepthOption = Annotated[int, typer.Option("--depth", min=1, help="With --hybrid: hits each side contributes to "
                                                                 "the fusion (at least --k).")]
HybridOption = Annotated[bool, typer.Option("--hybrid", help="Fuse BM25 and PinText rankings (client side).")]
MatchWeightOption = Annotated[Optional[float], typer.Option(
    "--match-weight", min=0.0, max=10.0, help="Word-match signal: a hit's score is its cosine + this x the share of "
    "the query's words its text matches (a missing word by its nearest pin word, for models `pintext train` makes; "
    "0: plain cosine); default MODEL/match.json, chosen by `pintext train`.")]


def cli_notes(note: str) -> None:
    """Notes of the API (what was chosen, skipped or waited for) on stderr, as one line each."""
    typer.echo(note, err=True)


def open_pintext(model: Path | None, index: str, url: str | None = None, user: str | None = None,
                 password: str | None = None, ca_certs: Path | None = None, insecure: bool = False,
                 engine: EngineName = EngineName.auto, local_dir: Path = DEFAULT_LOCAL_DIR,
                 timeout: float | None = None) -> Any:
    """The `PinText` a command's options name, its notes printed on stderr."""
    from pintext.api.service import PinText

    return PinText(model, url, index, engine=engine.value, user=user, password=password, ca_certs=ca_certs,
                   insecure=insecure, local_dir=local_dir, timeout=timeout, notes=cli_notes)
