"""Pick the demo's two search queries from the sample, so `make demo` shows both kinds of match.

Prints two lines:
1. a held-out (test split) search query that shares words with the pins — what BM25 can also answer;
2. a query whose words the model knows but that appear in NO pin's text — BM25 returns nothing for it, so
   every PinText hit is a match by meaning alone.

Usage: python scripts/demo_queries.py PAIRS_DIR MODEL_DIR PINS_JSONL
"""

import json
import sys

from datasets import load_from_disk

from pintext import Encoder
from pintext.schemas import pin_text
from pintext.text import words


def pin_vocabulary(pins_path: str) -> set[str]:
    vocabulary: set[str] = set()
    with open(pins_path, encoding="utf-8") as lines:
        for line in lines:
            vocabulary.update(words(pin_text(json.loads(line))))
    return vocabulary


def fully_known(encoder: Encoder, query: str) -> bool:
    """True when every word of the query is in the model's vocabulary."""
    return encoder.coverage([query]).token_share == 1.0


def main(pairs_dir: str, model_dir: str, pins_path: str) -> None:
    encoder = Encoder.load(model_dir)
    in_pins = pin_vocabulary(pins_path)
    search = load_from_disk(f"{pairs_dir}/search")
    test_queries = sorted(set(search["test"]["anchor"]))
    all_queries = sorted(set(q for split in search.values() for q in split["anchor"]))

    lexical = next(q for q in test_queries if len(words(q)) > 1 and set(words(q)) <= in_pins and fully_known(encoder, q))
    semantic = next(q for q in all_queries if not set(words(q)) & in_pins and fully_known(encoder, q))
    print(lexical)
    print(semantic)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
