"""Before/after figures of docs/results/ingest-speed/report.md: `pintext.bench.ingest.run` (PinText's ingest and a
plain bulk of the same pins, same node, same run) once on the pins index as it was (`index.knn: false`, the vector
also in `_source`) and once on the lean index (OpenSearch 3.x: k-NN derived source), one after the other.

    python docs/results/ingest-speed/measure.py PINS.jsonl MODEL_DIR [URL] > figures.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

from pintext.bench.ingest import run
from pintext.encoder import Encoder
from pintext.serving.engines import EngineOptions, open_engine


def main(pins: Path, model: Path, url: str) -> dict:
    engine = open_engine("opensearch", EngineOptions(url=url))
    dim = Encoder.load(model).dim
    n_pins = sum(1 for _ in open(pins, encoding="utf-8"))
    figures = {}
    for label, lean in (("before: vector in _source", False), ("after: lean (derived source)", True)):
        # `create` asks the node whether it has derived source; "before" answers no, as every index did until now.
        with mock.patch("pintext.serving.opensearch.lean_index", lambda _version, _replicas, lean=lean: lean):
            markdown, data = run(engine, url, pins, model, "ingest-speed", dim, n_pins)
        figures[label] = data
        print(f"## {label}\n\n{markdown}\n", file=sys.stderr, flush=True)
    engine.delete(engine.alias_target("ingest-speed") or "ingest-speed")
    return figures


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]),
                          sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:9200"), indent=2))
