"""The synthetic generator: deterministic, schema-valid, and with the statistical shape it promises."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from pintext.constants import SURFACES
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import read_records
from pintext.ingest.synth.generator import (
    FILLER_WORDS,
    SynthConfig,
    build_world,
    generate,
    generate_pins,
    simulate_sessions,
)
from pintext.ingest.synth.vocabulary import TOPICS
from pintext.schemas import ACTIONS, pin_text, validate_event, validate_pin, validate_user
from pintext.text import words

SMALL = SynthConfig(n_pins=1500, n_users=300, n_events=30_000, seed=3)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(SMALL, out)
    return out


def load(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, small_data):
    config = SynthConfig(n_pins=300, n_users=50, n_events=2000, seed=11)
    generate(config, tmp_path / "a", gzip_events=True)
    generate(config, tmp_path / "b", gzip_events=True)
    for name in ("pins.jsonl", "users.jsonl", "events.jsonl.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    generate(SynthConfig(n_pins=300, n_users=50, n_events=2000, seed=12), tmp_path / "c")
    assert (tmp_path / "a" / "pins.jsonl").read_bytes() != (tmp_path / "c" / "pins.jsonl").read_bytes()
    assert not list(tmp_path.glob("*/*.partial"))


def test_every_record_is_schema_valid_and_counts_are_exact(tmp_path, small_data):
    with DeadLetter(tmp_path / "rejected.jsonl") as dead_letter:
        pins = {record["id"] for _, record in read_records(small_data / "pins.jsonl", validate_pin, dead_letter)}
        users = list(read_records(small_data / "users.jsonl", validate_user, dead_letter))
        events = list(read_records(small_data / "events.jsonl", partial(validate_event, known_pins=pins), dead_letter))
    assert dead_letter.count == 0
    assert (len(pins), len(users), len(events)) == (SMALL.n_pins, SMALL.n_users, SMALL.n_events)
    interest_counts = Counter(len(user["interests"]) for _, user in users)
    assert set(interest_counts) == {1, 2, 3, 4}


def test_all_surfaces_actions_and_duplicate_deliveries(small_data):
    events = load(small_data / "events.jsonl")
    assert {event["surface"] for event in events} == set(SURFACES)
    assert {event["action"] for event in events} == set(ACTIONS)
    pairs = Counter((event["surface"], event["action"]) for event in events)
    assert all(pairs[(surface, action)] > 0 for surface in SURFACES for action in ACTIONS)
    duplicates = sum(n - 1 for n in Counter(event["event_id"] for event in events).values())
    assert 0 < duplicates < 0.01 * len(events)


def test_many_saved_search_pins_share_no_word_with_the_query(small_data):
    pins = {pin["id"]: set(words(pin_text(pin))) for pin in load(small_data / "pins.jsonl")}
    saves = [e for e in load(small_data / "events.jsonl") if e["surface"] == "search" and e["action"] == "save"]
    assert len(saves) > 300
    no_overlap = np.mean([not (set(words(e["query"])) & pins[e["pin_id"]]) for e in saves])
    # The point of the data: lexical matching misses many, but not all, of the pins people save.
    assert 0.4 <= no_overlap <= 0.9


def test_pin_popularity_is_zipf_like(small_data):
    impressions = Counter(e["pin_id"] for e in load(small_data / "events.jsonl") if e["action"] == "impression")
    counts = np.array(sorted(impressions.values(), reverse=True), dtype=float)
    top_decile_share = counts[: SMALL.n_pins // 10].sum() / counts.sum()
    assert top_decile_share > 0.35  # uniform popularity would give about 0.10
    ranks = np.arange(1, 101)
    slope = np.polyfit(np.log(ranks), np.log(counts[:100]), 1)[0]
    assert -1.6 < slope < -0.4


def test_engagement_follows_the_latent_topics():
    world = build_world(SMALL)
    for _ in generate_pins(world):
        pass  # fills the pins' concepts, which relevance needs
    sessions = simulate_sessions(world, np.random.default_rng(0), 4000)
    search = sessions.surface == 0
    shown_topic = world.pin_topic[sessions.shown]
    same_topic = shown_topic == sessions.topic[:, None]
    saved = sessions.save & search[:, None]
    shown = sessions.visible & search[:, None]
    # Saves are far more on-topic than what was shown, yet some clicks are noise on off-topic pins.
    assert same_topic[saved].mean() > 0.85 > same_topic[shown].mean()
    assert (sessions.click & ~same_topic & sessions.visible).any()


def test_synonyms_and_ambiguous_words_exist():
    world = build_world(SMALL)
    forms = world.forms
    assert forms.shape == (SMALL.topics(), SMALL.concepts_per_topic, SMALL.forms_per_concept)
    # Most catalogue words belong to one topic; English still has words that several topics use.
    assert len(np.unique(forms[:, :, 0])) > 0.8 * forms[:, :, 0].size
    assert (forms[:, :, 1] != forms[:, :, 0]).all()  # every concept has at least one real synonym
    assert world.ambiguous_words >= forms.shape[0] // 3


def test_the_english_vocabulary_is_well_formed():
    assert 60 <= len(TOPICS) <= 150
    fillers = set(FILLER_WORDS)
    for topic in TOPICS:
        assert len(topic.concepts) >= SynthConfig().concepts_per_topic, topic.name
        forms = [form for concept in topic.concepts for form in concept]
        assert len(forms) == len(set(forms)), f"{topic.name}: a form is in two concepts"
        for concept in topic.concepts:
            assert 2 <= len(concept) <= 3, (topic.name, concept)
            texts = [form.replace("_", " ") for form in concept]
            assert all(words(text) == text.split() for text in texts), (topic.name, concept)  # plain lowercase words
            concept_words = [word for text in texts for word in text.split()]
            # Synonyms share no word, so a query in one form and a pin in another really share none.
            assert len(concept_words) == len(set(concept_words)), (topic.name, concept)
            assert not fillers & set(concept_words), (topic.name, concept)  # fillers carry no topic


def test_topics_come_from_the_vocabulary_and_are_bounded_by_it():
    assert SynthConfig(n_pins=4000).topics() == 67
    assert SynthConfig(n_pins=1_000_000).topics() == len(TOPICS)
    with pytest.raises(ValueError, match="English vocabulary has"):
        SynthConfig(n_topics=len(TOPICS) + 1).topics()
    world = build_world(SynthConfig(n_pins=300, n_users=50, n_events=2000, seed=2, n_topics=len(TOPICS)))
    assert sorted(world.topic_names) == sorted(topic.name for topic in TOPICS)
    sofas = world.topic_names.index("Sofas and couches")
    assert [world.vocab[i] for i in world.forms[sofas, 0]] == ["sofa", "couch", "settee"]
    assert [world.vocab[i] for i in world.forms[sofas, 1]] == ["armchair", "recliner", "lounger"]
    pins = next(generate_pins(world))
    assert {pin["board"] for pin in pins} <= set(world.topic_names)
