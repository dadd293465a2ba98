"""Figures of docs/results/ingest-speed/report.md, "Binary (SMILE) bulk bodies": whether the node indexes PinText
documents faster when the bulk body is SMILE (Jackson's binary JSON, which OpenSearch's `_bulk` accepts beside
NDJSON) instead of JSON text, and what each index layout then stores.

The vectors (int8, as served) and centroid tokens are computed once; every bulk body is built before any timing, so
what is timed is the request and the node's parsing and indexing alone (no PinText code in the loop): 500 pins a
request, one in flight, refresh off while writing, a fresh index per variant and round, rounds interleaved.

Variants:
- `plain_json`: the pins without vector and tokens (the baseline of every ratio);
- `lean_json`: what `pintext ingest` writes today (k-NN index, derived source: the vector is not kept in `_source`);
- `knn_off_json`, `knn_off_smile`: the same documents into an index without `index.knn` (the vector is kept in
  `_source`; the exact `knn_score` script still scores it), as JSON and as SMILE;
- `plain_smile`: the baseline's pins as SMILE.
A SMILE bulk into a k-NN index is sent once to show the node's answer (OpenSearch 3.5.0: every item refused).

The SMILE writer below covers what these documents hold (objects, arrays, strings, integers, floats, booleans,
null): a measurement aid, not product code (no well-kept Python SMILE library exists; `pysmile` 0.2 is Python 2).

    python docs/results/ingest-speed/measure_smile.py PINS.jsonl MODEL_DIR [URL] [ROUNDS] [PINS] > figures.json
"""

from __future__ import annotations

import json
import struct
import sys
import time
from typing import Any

import numpy as np
import urllib3
from measure_ints import BATCH, prepared  # this folder's script: the same pins, model and int8 vectors

from pintext.bench.harness import load_average
from pintext.mapping import pins_index_body
from pintext.quantize import INT8
from pintext.serving.meta import index_meta
from pintext.tokens.centroids import fit_centroids

CENTROIDS = 2799  # what `auto` tunes on the 54,667 Home Depot titles today (bench/catalogue)
SMILE_HEADER = b":)\n\x00"  # version 0, no shared names or values, no raw binary
SMILE_END = b"\xff"  # the bulk API's separator between SMILE documents


def smile_vint(value: int) -> bytes:
    """SMILE's unsigned variable-length integer: 7 bits a byte, big-endian, the last byte 6 bits with 0x80 set."""
    out = [0x80 | (value & 0x3F)]
    value >>= 6
    while value:
        out.append(value & 0x7F)
        value >>= 7
    return bytes(reversed(out))


def smile_int(value: int, out: bytearray) -> None:
    if -16 <= value <= 15:
        out.append(0xC0 + ((value << 1) ^ (value >> 31)))
    elif -(1 << 31) <= value < (1 << 31):
        out.append(0x24)
        out += smile_vint(((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)
    else:
        out.append(0x25)
        out += smile_vint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def smile_double(value: float, out: bytearray) -> None:
    """A 64-bit float as ten 7-bit groups, big-endian (the first holds the sign bit alone)."""
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    out.append(0x29)
    out += bytes([(bits >> 63) & 0x01] + [(bits >> (56 - 7 * group)) & 0x7F for group in range(9)])


def smile_string(text: str, out: bytearray) -> None:
    raw = text.encode("utf-8")
    if not raw:
        out.append(0x20)
    elif len(raw) == len(text):  # ASCII
        if len(raw) <= 32:
            out.append(0x40 + len(raw) - 1)
        elif len(raw) <= 64:
            out.append(0x60 + len(raw) - 33)
        else:
            out += b"\xe0" + raw + b"\xfc"
            return
        out += raw
    elif len(raw) <= 33:
        out.append(0x80 + len(raw) - 2)
        out += raw
    elif len(raw) <= 65:
        out.append(0xA0 + len(raw) - 34)
        out += raw
    else:
        out += b"\xe4" + raw + b"\xfc"


def smile_key(name: str, out: bytearray) -> None:
    raw = name.encode("utf-8")
    if not raw:
        out.append(0x20)
    elif len(raw) == len(name) and len(raw) <= 64:
        out.append(0x80 + len(raw) - 1)
        out += raw
    elif len(raw) != len(name) and 2 <= len(raw) <= 57:
        out.append(0xC0 + len(raw) - 2)
        out += raw
    else:
        out += b"\x34" + raw + b"\xfc"


def smile_value(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0x21)
    elif isinstance(value, bool):
        out.append(0x23 if value else 0x22)
    elif isinstance(value, str):
        smile_string(value, out)
    elif isinstance(value, (int, np.integer)):
        smile_int(int(value), out)
    elif isinstance(value, float):
        smile_double(value, out)
    elif isinstance(value, (list, tuple, np.ndarray)):
        out.append(0xF8)
        for item in (value.tolist() if isinstance(value, np.ndarray) else value):
            smile_value(item, out)
        out.append(0xF9)
    elif isinstance(value, dict):
        out.append(0xFA)
        for name, item in value.items():
            smile_key(str(name), out)
            smile_value(item, out)
        out.append(0xFB)
    else:
        raise TypeError(f"no SMILE form for {type(value).__name__}")


def smile(document: dict) -> bytes:
    out = bytearray(SMILE_HEADER)
    smile_value(document, out)
    return bytes(out)


def json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def bulk_bodies(index: str, docs: list[tuple[str, dict]], form: str) -> list[bytes]:
    bodies = []
    for start in range(0, len(docs), BATCH):
        chunk = docs[start:start + BATCH]
        if form == "json":
            lines = [line for pin_id, doc in chunk
                     for line in (json.dumps({"index": {"_index": index, "_id": pin_id}}),
                                  json.dumps(doc, default=json_default))]
            bodies.append(("\n".join(lines) + "\n").encode("utf-8"))
        else:
            parts = [part for pin_id, doc in chunk
                     for part in (smile({"index": {"_index": index, "_id": pin_id}}), smile(doc))]
            bodies.append(SMILE_END.join(parts) + SMILE_END)
    return bodies


CONTENT_TYPES = {"json": "application/x-ndjson", "smile": "application/smile"}


def post(http: urllib3.PoolManager, url: str, body: bytes, form: str) -> dict:
    response = http.request("POST", f"{url}/_bulk", body=body,
                            headers={"Content-Type": CONTENT_TYPES[form], "Accept": "application/json"})
    return json.loads(response.data)


def put_index(http: urllib3.PoolManager, url: str, index: str, body: dict) -> None:
    http.request("DELETE", f"{url}/{index}")
    body["settings"]["index"]["refresh_interval"] = "-1"
    response = http.request("PUT", f"{url}/{index}", body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json"})
    if response.status != 200:
        raise RuntimeError(response.data.decode()[:300])


def stored_bytes(http: urllib3.PoolManager, url: str, index: str) -> int:
    http.request("POST", f"{url}/{index}/_refresh")
    http.request("POST", f"{url}/{index}/_forcemerge?max_num_segments=1")
    http.request("POST", f"{url}/{index}/_flush")
    stats = json.loads(http.request("GET", f"{url}/{index}/_stats/store").data)
    return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])


def main(argv: list[str]) -> int:
    url, rounds, encoder, pins, vectors = prepared(argv)
    family = fit_centroids(vectors.astype(np.float32), centroids=min(CENTROIDS, len(pins) // 10), spill=2)
    tokens = family.tokens(vectors.astype(np.float32))
    meta = index_meta(encoder.fingerprint, encoder.dim, family, vector_type=INT8)
    plain = [(str(pin["id"]), pin) for pin in pins]
    full = [(str(pin["id"]), {**pin, "lsh_tokens": pin_tokens, "vector": vector})
            for pin, vector, pin_tokens in zip(pins, vectors, tokens)]
    lean = pins_index_body(encoder.dim, meta, lean=True, byte_vectors=True)
    knn_off = pins_index_body(encoder.dim, meta, lean=False, byte_vectors=True)
    variants = {"plain_json": (plain, "json", knn_off), "lean_json": (full, "json", lean),
                "knn_off_json": (full, "json", knn_off), "knn_off_smile": (full, "smile", knn_off),
                "plain_smile": (plain, "smile", knn_off)}
    bodies = {name: bulk_bodies(f"smile-speed-{name}", docs, form) for name, (docs, form, _) in variants.items()}
    http = urllib3.PoolManager()
    put_index(http, url, "smile-speed-refused", json.loads(json.dumps(lean)))
    refused = post(http, url, bulk_bodies("smile-speed-refused", full[:1], "smile")[0], "smile")
    http.request("DELETE", f"{url}/smile-speed-refused")
    rows, store = [], {}
    for round_no in range(rounds):
        for name, (_, form, mapping) in variants.items():
            index = f"smile-speed-{name}"
            put_index(http, url, index, json.loads(json.dumps(mapping)))
            began = time.perf_counter()
            for body in bodies[name]:
                answer = post(http, url, body, form)
                if answer.get("errors"):
                    raise RuntimeError(f"{name}: {json.dumps(answer)[:300]}")
            seconds = time.perf_counter() - began
            rows.append({"round": round_no + 1, "variant": name, "docs_per_s": round(len(pins) / seconds),
                         "load": load_average()})
            if round_no == rounds - 1:
                store[name] = round(stored_bytes(http, url, index) / len(pins), 1)
            http.request("DELETE", f"{url}/{index}")
    body_bytes = {name: round(sum(map(len, chunks)) / len(pins)) for name, chunks in bodies.items()}
    json.dump({"pins": len(pins), "centroids": family.centroids, "rows": rows, "store_bytes_a_pin": store,
               "body_bytes_a_pin": body_bytes, "smile_into_knn_index": refused["items"][0]}, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
