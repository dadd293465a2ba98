#!/usr/bin/env bash
# `make demo`: the whole PinText pipeline on the committed sample, end to end, on a real OpenSearch node.
# sample engagement -> pairs -> train (multitask) -> index -> ingest -> search / related / dsl.
# Re-running is safe: pairs and model are rebuilt, the demo index is recreated, ingest is idempotent by pin id.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
OUT=${DEMO_OUT:-out/demo}
INDEX=${DEMO_INDEX:-pins-demo}
SAMPLE=data/sample
MODEL=$OUT/model

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/7 OpenSearch with the k-NN plugin (downloaded from Maven Central once, cached)"
$BIN/pintext opensearch up
$BIN/pintext opensearch status

step "2/7 Engagement events -> positive pairs per task (search, related, homefeed)"
$BIN/pintext pairs --events $SAMPLE/events.jsonl.gz --pins $SAMPLE/pins.jsonl --users $SAMPLE/users.jsonl --out "$OUT/pairs"

step "3/7 Train one shared word table on all three tasks (PinText-MTL)"
$BIN/pintext train --pairs "$OUT/pairs" --out "$MODEL"

step "4/7 Create the pins index for this model (mapping, _meta, search template)"
$BIN/pintext index delete --index "$INDEX"
$BIN/pintext index create --index "$INDEX" --model "$MODEL"

step "5/7 Ingest the pins: embed, hash into LSH tokens, bulk-index by pin id"
$BIN/pintext ingest $SAMPLE/pins.jsonl --index "$INDEX" --model "$MODEL" \
  --dead-letter "$OUT/pins.rejected.jsonl" --checkpoint "$OUT/pins.checkpoint.json"

mapfile -t QUERIES < <($BIN/python scripts/demo_queries.py "$OUT/pairs" "$MODEL" $SAMPLE/pins.jsonl)

step "6/7 Search: a held-out query, then one whose words appear in NO pin (BM25 finds nothing for it)"
$BIN/pintext search "${QUERIES[0]}" --index "$INDEX" --model "$MODEL" --k 5
$BIN/pintext search "${QUERIES[1]}" --index "$INDEX" --model "$MODEL" --k 5 --explain
echo "The query '${QUERIES[1]}' shares no word with any pin, so every hit above is a match by meaning. People who"
echo "searched it saved pins from the board '${QUERIES[2]}': the board column shows whether PinText found that topic."
echo "The same query, filtered to that board (a filter applies in the first stage; one that keeps fewer pins than the"
echo "rescore window is scored exactly, pin by pin):"
$BIN/pintext search "${QUERIES[1]}" --index "$INDEX" --model "$MODEL" --k 5 --filter "board=${QUERIES[2]}"

step "7/7 Related pins, the index behind the alias, and the query DSL to paste into Dashboards Dev Tools"
FIRST_PIN=$(head -n 1 $SAMPLE/pins.jsonl | $BIN/python -c 'import json,sys; print(json.load(sys.stdin)["id"])')
$BIN/pintext related "$FIRST_PIN" --index "$INDEX" --model "$MODEL" --k 5
$BIN/pintext index info --index "$INDEX" | $BIN/python -c 'import json, sys; i = json.load(sys.stdin); print("alias %s -> %s (%d pins, %d version); a new model rolls out with: pintext ingest ... --model NEW, then pintext index promote --model NEW" % (i["alias"], i["serving"], i["docs"], len(i["versions"])))'
$BIN/pintext dsl "${QUERIES[1]}" --index "$INDEX" --model "$MODEL" | head -n 12
echo "..."

printf '\nDone. The node keeps running for you: try `%s/pintext search "..." --index %s --model %s`;\n' "$BIN" "$INDEX" "$MODEL"
printf 'stop it with `%s/pintext opensearch down`.\n' "$BIN"
