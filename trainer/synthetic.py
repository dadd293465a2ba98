"""Tiny synthetic pair data in the `pintext pairs` layout, for tests and for trying the trainer.

Topics have their own words. Pins mix words of one topic with shared filler words. Search queries use
only a few "query words" per topic, while related-pin and home-feed pairs use the whole topic vocabulary:
like the paper's data, the auxiliary tasks teach words the search task never sees, which is where
multitask training gains word coverage.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pintext.constants import (
    ANCHOR,
    ANCHOR_ID,
    COUNT,
    POSITIVE,
    POSITIVE_ID,
    RELATED,
    SEARCH,
    TASKS,
    TEST,
    TRAIN,
    VALIDATION,
    WEIGHT,
)
from pintext.schemas import pin_text

FILLER_WORDS = ["the", "best", "ideas", "for", "with", "new", "easy", "diy", "my", "home"]
SYLLABLES = ["ka", "lo", "mi", "ru", "ta", "ne", "so", "vi", "pe", "zu", "ba", "do", "fi", "gu", "ho", "ji"]


def _pseudo_word(rng: random.Random, used: set[str]) -> str:
    while True:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        if word not in used:
            used.add(word)
            return word


def make_topics(n_topics: int, words_per_topic: int, rng: random.Random) -> list[list[str]]:
    """Disjoint word lists, one per topic."""
    used = set(FILLER_WORDS)
    return [[_pseudo_word(rng, used) for _ in range(words_per_topic)] for _ in range(n_topics)]


def _pin(pin_id: str, topic_words: list[str], rng: random.Random) -> dict:
    title = " ".join(rng.sample(topic_words, 3) + rng.sample(FILLER_WORDS, 1))
    description = " ".join(rng.sample(topic_words, 4) + rng.sample(FILLER_WORDS, 2))
    return {"id": pin_id, "title": title.title(), "description": description, "annotations": []}


def make_pairs(
    out_dir: str | Path,
    *,
    n_topics: int = 12,
    words_per_topic: int = 24,
    pins_per_topic: int = 30,
    pairs_per_task: int = 900,
    query_words: int = 8,
    seed: int = 0,
) -> Path:
    """Write `out_dir/<task>/` DatasetDicts (train/validation/test) and `out_dir/pins.jsonl`; returns out_dir."""
    from datasets import Dataset, DatasetDict

    rng = random.Random(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    topics = make_topics(n_topics, words_per_topic, rng)
    pins_by_topic = [
        [_pin(f"p{topic}-{index}", words, rng) for index in range(pins_per_topic)] for topic, words in enumerate(topics)
    ]
    with (out_dir / "pins.jsonl").open("w", encoding="utf-8") as handle:
        for pins in pins_by_topic:
            for pin in pins:
                handle.write(json.dumps(pin) + "\n")

    def anchor_for(task: str, topic: int) -> tuple[str, str]:
        words = topics[topic]
        if task == SEARCH:
            query = " ".join(rng.sample(words[:query_words], rng.randint(1, 2)))
            return query, query
        if task == RELATED:
            subject = rng.choice(pins_by_topic[topic])
            return pin_text(subject), subject["id"]
        interests = " ".join(rng.sample(words, 3))
        return interests, f"user-{topic}-{interests.replace(' ', '-')}"

    for task in TASKS:
        rows = []
        for _ in range(pairs_per_task):
            topic = rng.randrange(n_topics)
            anchor, anchor_id = anchor_for(task, topic)
            positive = rng.choice(pins_by_topic[topic])
            rows.append(
                {
                    ANCHOR: anchor,
                    POSITIVE: pin_text(positive),
                    ANCHOR_ID: anchor_id,
                    POSITIVE_ID: positive["id"],
                    COUNT: 1,
                    WEIGHT: 1.0,
                }
            )
        cut_train, cut_validation = int(0.8 * len(rows)), int(0.9 * len(rows))
        DatasetDict(
            {
                TRAIN: Dataset.from_list(rows[:cut_train]),
                VALIDATION: Dataset.from_list(rows[cut_train:cut_validation]),
                TEST: Dataset.from_list(rows[cut_validation:]),
            }
        ).save_to_disk(str(out_dir / task))
    return out_dir
