"""Pick the demo's two search queries from the sample, so `make demo` shows both kinds of match.

Prints three lines:
1. a held-out (test split) search query that shares words with the pins — what BM25 can also answer;
2. a query whose words the model knows but that appear in NO pin's text — BM25 returns nothing for it, so
   every PinText hit is a match by meaning alone;
3. the board most of the pins people saved or clicked for query 2 are on: the topic its hits should show.

Of each kind, the query picked is the one whose exact top-5 pins are most often on the board its engaged pins
are on (then the one people engaged with most): the demo shows queries the model has learned, not random ones.
The unbiased figures over all test queries are in the eval report (`make eval`), not here.

Usage: python scripts/demo_queries.py PAIRS_DIR MODEL_DIR PINS_JSONL
"""

import json
import sys
from collections import Counter

import numpy as np
from datasets import load_from_disk

from pintext import Encoder
from pintext.schemas import pin_text
from pintext.text import words

TOP = 5


def load_pins(pins_path: str) -> list[dict]:
    with open(pins_path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def fully_known(encoder: Encoder, query: str) -> bool:
    """True when every word of the query is in the model's vocabulary."""
    return encoder.coverage([query]).token_share == 1.0


def engaged_boards(search) -> dict[str, Counter]:
    """Per query: the boards of the pins engaged for it, weighted by how many users engaged."""
    boards: dict[str, Counter] = {}
    for split in search.values():
        for query, board, count in zip(split["anchor"], split["positive_board"], split["count"]):
            boards.setdefault(query, Counter())[board] += count
    return boards


def best_query(encoder: Encoder, pins: list[dict], candidates: list[str], boards: dict[str, Counter]):
    """(query, its board): the candidate whose exact top-5 pins land most often on its engaged board."""
    vectors = encoder.encode([pin_text(pin) for pin in pins])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    scored = []
    for query in candidates:
        board, _ = boards[query].most_common(1)[0]
        vector = encoder.encode([query])[0]
        top = np.argsort(-(vectors @ vector), kind="stable")[:TOP]
        on_board = sum(pins[i].get("board") == board for i in top)
        scored.append((-on_board, -sum(boards[query].values()), query, board))
    _, _, query, board = min(scored)
    return query, board


def main(pairs_dir: str, model_dir: str, pins_path: str) -> None:
    encoder = Encoder.load(model_dir)
    pins = load_pins(pins_path)
    in_pins = {word for pin in pins for word in words(pin_text(pin))}
    board_of = {pin["id"]: pin.get("board", "") for pin in pins}
    search = load_from_disk(f"{pairs_dir}/search")
    search = search.map(lambda row: {"positive_board": board_of.get(row["positive_id"], "")})
    test_queries = sorted(set(search["test"]["anchor"]))
    all_queries = sorted(set(q for split in search.values() for q in split["anchor"]))

    boards = engaged_boards(search)
    lexical_candidates = [q for q in test_queries
                          if len(words(q)) > 1 and set(words(q)) <= in_pins and fully_known(encoder, q)]
    lexical, _ = best_query(encoder, pins, lexical_candidates, boards)
    candidates = [q for q in all_queries if not set(words(q)) & in_pins and fully_known(encoder, q)]
    semantic, board = best_query(encoder, pins, candidates, boards)
    print(lexical)
    print(semantic)
    print(board)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    import datasets

    datasets.disable_progress_bars()
    main(*sys.argv[1:])
