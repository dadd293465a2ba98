"""Synthetic engagement data with a known latent structure: pins, users and events as JSONL.

The generative model (documented in docs/data.md) is built so that lexical matching is not enough:

- `n_topics` latent interests drawn from the project's English topic vocabularies (`pintext.ingest.synth.vocabulary`:
  sofas and couches, hiking, weddings, ...), each with `concepts_per_topic` concepts; a concept has 2-3
  surface forms, real synonyms (sofa / couch / settee). Pins prefer form 0 (the "catalogue" word), queries
  prefer the other forms (the words people type), so a query and the pin a user saves for it often share no word.
- Some words are ambiguous the way English words are: the same word (pot, frame, bowl) is a form in several topics.
- Generic filler words ("ideas", "easy", "diy", ...) are shared by every topic and carry no topical signal.
- Pin popularity is Zipf-distributed; topic sizes are Zipf-like too.
- Users have 1-4 interests with Dirichlet weights, and an interest text per interest (a short phrase of that
  topic's words). Sessions happen on search (a query from the topic's query pool), related (a subject pin)
  and home feed (pins from the user's interests). Each session shows a list of pins; clicks, saves and hides
  depend on the pin's relevance (off-topic, on-topic, or on-topic and about the query's concept) and on its
  position. Some clicks land on off-topic pins (noise) and are sometimes followed by a hide (regret).
- A small share of events is delivered twice with the same `event_id` (at-least-once delivery).

Everything is deterministic for a seed. The latent model is built with numpy in one go; pins and events are
generated in vectorized chunks and written as they are made, so memory stays bounded by the latent tables.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from pintext.constants import HOMEFEED, RELATED, SEARCH, SURFACES
from pintext.ingest.synth.vocabulary import TOPICS, Topic

# A session's surface as a small int (SessionChunk.surface): its index in SURFACES.
SEARCH_CODE, RELATED_CODE, HOMEFEED_CODE = (SURFACES.index(name) for name in (SEARCH, RELATED, HOMEFEED))

#: Generic words shared by every topic (no topical signal), most common first.
FILLER_WORDS = (
    "ideas", "best", "easy", "diy", "for", "with", "and", "the", "new", "simple", "how", "to", "my", "your",
    "love", "style", "inspiration", "beautiful", "cute", "small", "big", "modern", "classic", "quick", "top",
    "guide", "tips", "favorite", "perfect", "home", "summer", "winter", "spring", "fall", "2026", "aesthetic",
    "cheap", "minimal", "cozy", "vintage", "pretty", "simple", "trendy", "daily", "weekend", "kids",
)

#: Per-impression probabilities by relevance level: 0 off-topic, 1 on-topic, 2 on-topic and on-concept.
CLICK_PROB = np.array([0.03, 0.10, 0.40])
SAVE_AFTER_CLICK_PROB = np.array([0.06, 0.35, 0.50])
SAVE_WITHOUT_CLICK_PROB = np.array([0.002, 0.03, 0.06])
HIDE_PROB = np.array([0.05, 0.006, 0.002])
REGRET_HIDE_PROB = 0.30  # an off-topic click followed by a hide
POSITION_DECAY = 0.12  # click and save probability scale 1 / (1 + decay * position)


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and knobs of the generative model; defaults match the committed sample."""

    n_pins: int = 4000
    n_users: int = 800
    n_events: int = 120_000
    seed: int = 0
    n_topics: int = 0  # 0: derived from n_pins (50..200, at most the topics in the vocabulary)
    concepts_per_topic: int = 40
    forms_per_concept: int = 3  # a concept with fewer synonyms repeats its last one
    queries_per_topic: int = 40
    interest_phrases_per_topic: int = 8
    pin_zipf: float = 1.05
    query_zipf: float = 1.0
    concept_zipf: float = 0.9
    # English synonyms overlap more than made-up words (shared words in phrases, words in several topics), so
    # pins keep closer to the catalogue word and queries further from it; this keeps ~61% of search pairs
    # sharing no word, as with the earlier pseudo-word vocabulary.
    pin_form_probs: tuple[float, ...] = (0.9, 0.07, 0.03)
    query_form_probs: tuple[float, ...] = (0.2, 0.45, 0.35)
    surface_probs: tuple[float, float, float] = (0.45, 0.25, 0.30)
    explore_prob: float = 0.08
    on_topic_impression_prob: tuple[float, float, float] = (0.7, 0.65, 0.75)
    mixed_pin_share: float = 0.15
    duplicate_event_rate: float = 0.003
    days: int = 30
    start: str = "2026-01-01T00:00:00+00:00"

    def topics(self) -> int:
        """The number of latent topics (at most the number of topics the vocabulary has)."""
        if self.n_topics > len(TOPICS):
            raise ValueError(f"--topics {self.n_topics}: the English vocabulary has {len(TOPICS)} topics")
        return self.n_topics or min(len(TOPICS), int(np.clip(round(self.n_pins / 60), 50, 200)))


@dataclass
class World:
    """The latent model: vocabulary, topics, concepts, surface forms, pins' topics, users, query pools."""

    config: SynthConfig
    vocab: np.ndarray  # object array of surface forms (a word or a short phrase); fillers at the end
    forms: np.ndarray  # [topic, concept, form] -> vocab id
    topic_names: list[str]  # board name per topic
    filler_ids: np.ndarray
    filler_cdf: np.ndarray
    concept_cdf: np.ndarray
    pin_topic: np.ndarray
    pin_secondary_topic: np.ndarray
    pin_popularity_cdf: np.ndarray  # over all pins
    topic_pin_order: np.ndarray  # pin indices sorted by topic
    topic_offset_cdf: np.ndarray  # topic + within-topic popularity CDF, aligned with topic_pin_order
    pin_concepts: np.ndarray  # [pin, slot] -> global concept id (topic * C + concept), -1 padded
    query_words: np.ndarray  # [topic, query, slot] -> word id, -1 padded
    query_concepts: np.ndarray  # [topic, query, slot] -> global concept id, -1 padded
    query_cdf: np.ndarray
    user_topics: np.ndarray  # [user, 4] -> topic, -1 padded
    user_weight_cdf: np.ndarray  # [user, 4] cumulative interest weights
    user_interest_texts: list[list[np.ndarray]]  # per user, per interest: the word ids of its text
    user_activity_cdf: np.ndarray
    topic_popularity_cdf: np.ndarray
    ambiguous_words: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def zipf_cdf(size: int, exponent: float) -> np.ndarray:
    """CDF of a Zipf law over ranks 1..size."""
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def sample_cdf(rng: np.random.Generator, cdf: np.ndarray, size: Any) -> np.ndarray:
    """Indices drawn from a discrete distribution given by its CDF."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def topic_forms(topics: list[Topic], n_concepts: int, n_forms: int) -> tuple[list[str], np.ndarray]:
    """The distinct surface forms of `topics` and the [topic, concept, form] array of their ids.

    A form written `coffee_table` in the vocabulary is the phrase "coffee table". A concept with fewer than
    `n_forms` synonyms repeats its last one, so the form probabilities stay the same for every concept.
    """
    ids: dict[str, int] = {}
    forms = np.zeros((len(topics), n_concepts, n_forms), dtype=np.int64)
    for t, topic in enumerate(topics):
        if len(topic.concepts) < n_concepts:
            raise ValueError(f"topic {topic.name!r} has {len(topic.concepts)} concepts, fewer than {n_concepts}")
        for c, synonyms in enumerate(topic.concepts[:n_concepts]):
            for f in range(n_forms):
                text = synonyms[min(f, len(synonyms) - 1)].replace("_", " ")
                forms[t, c, f] = ids.setdefault(text, len(ids))
    return list(ids), forms


def count_ambiguous(forms: np.ndarray) -> int:
    """Surface forms that belong to two or more topics."""
    topics_per_form = np.bincount(np.concatenate([np.unique(topic) for topic in forms]))
    return int((topics_per_form >= 2).sum())


def build_world(config: SynthConfig) -> World:
    """Draw the latent model for a config (deterministic for its seed)."""
    vocab_rng, pin_rng, user_rng, query_rng = (
        np.random.default_rng(seq) for seq in np.random.SeedSequence(config.seed).spawn(4)
    )
    n_topics, n_concepts, n_forms = config.topics(), config.concepts_per_topic, config.forms_per_concept
    # Which of the vocabulary's topics this world uses (all of them once n_topics reaches their number).
    topics = [TOPICS[index] for index in vocab_rng.choice(len(TOPICS), size=n_topics, replace=False)]
    fillers = list(dict.fromkeys(FILLER_WORDS))
    topical, forms = topic_forms(topics, n_concepts, n_forms)
    vocab = np.array(topical + fillers, dtype=object)
    filler_ids = np.arange(len(topical), len(vocab))

    topic_popularity_cdf = zipf_cdf(n_topics, 0.8)
    topic_rank = pin_rng.permutation(n_topics)  # which topic is the most popular is random
    pin_topic = topic_rank[sample_cdf(pin_rng, topic_popularity_cdf, config.n_pins)]
    pin_secondary_topic = pin_rng.integers(n_topics, size=config.n_pins)
    pin_weight = 1.0 / (pin_rng.permutation(config.n_pins) + 1.0) ** config.pin_zipf
    pin_popularity_cdf = np.cumsum(pin_weight) / pin_weight.sum()
    topic_pin_order, topic_offset_cdf = _within_topic_cdf(pin_topic, pin_weight, n_topics)

    query_words, query_concepts = _query_pools(query_rng, config, forms, filler_ids)
    user_topics, user_weight_cdf, interest_texts, activity_cdf = _users(
        user_rng, config, forms, topic_rank, topic_popularity_cdf
    )
    return World(
        config=config,
        vocab=vocab,
        forms=forms,
        topic_names=[topic.name for topic in topics],
        filler_ids=filler_ids,
        filler_cdf=zipf_cdf(len(filler_ids), 1.0),
        concept_cdf=zipf_cdf(n_concepts, config.concept_zipf),
        pin_topic=pin_topic,
        pin_secondary_topic=pin_secondary_topic,
        pin_popularity_cdf=pin_popularity_cdf,
        topic_pin_order=topic_pin_order,
        topic_offset_cdf=topic_offset_cdf,
        pin_concepts=np.full((config.n_pins, PIN_CONCEPT_SLOTS), -1, dtype=np.int32),
        query_words=query_words,
        query_concepts=query_concepts,
        query_cdf=zipf_cdf(config.queries_per_topic, config.query_zipf),
        user_topics=user_topics,
        user_weight_cdf=user_weight_cdf,
        user_interest_texts=interest_texts,
        user_activity_cdf=activity_cdf,
        topic_popularity_cdf=topic_popularity_cdf,
        ambiguous_words=count_ambiguous(forms),
        extra={"topic_rank": topic_rank},
    )


def _within_topic_cdf(pin_topic: np.ndarray, weight: np.ndarray, n_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """Pins sorted by topic, and `topic + CDF within the topic` so one searchsorted samples any topic.

    Sampling a pin of topic t by popularity is then `order[searchsorted(cdf, t + u)]` for u uniform in [0, 1).
    """
    order = np.argsort(pin_topic, kind="stable")
    sorted_topic = pin_topic[order]
    sorted_weight = weight[order]
    totals = np.bincount(sorted_topic, weights=sorted_weight, minlength=n_topics)
    cumulative = np.cumsum(sorted_weight)
    topic_start = np.concatenate([[0.0], np.cumsum(totals)])[sorted_topic]
    within = (cumulative - topic_start) / np.maximum(totals[sorted_topic], 1e-300)
    return order, sorted_topic + np.minimum(within, 1.0)


def _query_pools(
    rng: np.random.Generator, config: SynthConfig, forms: np.ndarray, filler_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per topic, a pool of queries of 1-3 concepts in colloquial forms, sometimes with a filler word."""
    n_topics, n_concepts, _ = forms.shape
    shape = (n_topics, config.queries_per_topic)
    n_concept_words = rng.choice([1, 2, 3], size=shape, p=[0.3, 0.45, 0.25])
    concepts = sample_cdf(rng, zipf_cdf(n_concepts, config.concept_zipf), shape + (3,))
    chosen_forms = sample_cdf(rng, np.cumsum(config.query_form_probs), shape + (3,))
    topic_index = np.arange(n_topics)[:, None, None]
    words = forms[topic_index, concepts, chosen_forms]
    used = np.arange(3)[None, None, :] < n_concept_words[..., None]
    # A concept drawn twice for one query is used once ("donuts donuts" is not a query anyone types).
    repeated = np.zeros_like(used)
    repeated[..., 1] = concepts[..., 1] == concepts[..., 0]
    repeated[..., 2] = (concepts[..., 2] == concepts[..., 0]) | (concepts[..., 2] == concepts[..., 1])
    used &= ~repeated
    query_concepts = np.where(used, topic_index * n_concepts + concepts, -1)
    words = np.where(used, words, -1)
    with_filler = rng.random(shape) < 0.15
    filler = filler_ids[sample_cdf(rng, zipf_cdf(len(filler_ids), 1.0), shape)]
    words = np.concatenate([words, np.where(with_filler, filler, -1)[..., None]], axis=2)
    return words, query_concepts


def _users(
    rng: np.random.Generator,
    config: SynthConfig,
    forms: np.ndarray,
    topic_rank: np.ndarray,
    topic_cdf: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]], np.ndarray]:
    """Users' interest topics (1-4, popular topics more often), weights, interest texts and activity."""
    n_topics, n_concepts, n_forms = forms.shape
    n_users = config.n_users
    n_interests = rng.choice([1, 2, 3, 4], size=n_users, p=[0.3, 0.35, 0.23, 0.12])
    topics = topic_rank[sample_cdf(rng, topic_cdf, (n_users, 4))]
    used = np.arange(4)[None, :] < n_interests[:, None]
    topics = np.where(used, topics, -1)
    weights = np.where(used, rng.dirichlet(np.ones(4), size=n_users), 0.0)
    weight_cdf = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    # A fixed phrase pool per topic (like an interest taxonomy), so interest texts repeat across users.
    phrase_concepts = rng.integers(n_concepts, size=(n_topics, config.interest_phrases_per_topic, 2))
    phrase_forms = rng.integers(n_forms, size=(n_topics, config.interest_phrases_per_topic, 2))
    phrase_length = rng.integers(1, 3, size=(n_topics, config.interest_phrases_per_topic))
    phrase_pick = rng.integers(config.interest_phrases_per_topic, size=(n_users, 4))
    texts: list[list[np.ndarray]] = []
    for user in range(n_users):
        user_texts = []
        for slot in range(n_interests[user]):
            topic, phrase = topics[user, slot], phrase_pick[user, slot]
            phrase_ids = forms[topic, phrase_concepts[topic, phrase], phrase_forms[topic, phrase]]
            ids = phrase_ids[: phrase_length[topic, phrase]]
            user_texts.append(ids)
        texts.append(user_texts)  # word ids; `users_as_records` turns them into strings
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    activity_cdf = np.cumsum(activity) / activity.sum()
    return topics, weight_cdf, texts, activity_cdf


# Pin layout: title slots then description slots; the concepts of the first slots are kept for relevance.
TITLE_SLOTS, DESCRIPTION_SLOTS, PIN_CONCEPT_SLOTS = 7, 18, 12


def pin_id(index: int | np.integer) -> str:
    return f"p{int(index):07d}"


def user_id(index: int | np.integer) -> str:
    return f"u{int(index):06d}"


def generate_pins(world: World, chunk_size: int = 20_000) -> Iterator[list[dict[str, Any]]]:
    """Pins in chunks; fills `world.pin_concepts` as it goes (events use it for relevance)."""
    config = world.config
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(5)[4])
    n_concepts = config.concepts_per_topic
    pin_form_cdf = np.cumsum(config.pin_form_probs)
    slots = TITLE_SLOTS + DESCRIPTION_SLOTS
    for start in range(0, config.n_pins, chunk_size):
        end = min(start + chunk_size, config.n_pins)
        size = end - start
        topic = world.pin_topic[start:end]
        secondary = world.pin_secondary_topic[start:end]
        concept = sample_cdf(rng, world.concept_cdf, (size, slots))
        form = sample_cdf(rng, pin_form_cdf, (size, slots))
        # Mixed pins take about a third of their description words from a second topic.
        use_secondary = (rng.random(size) < config.mixed_pin_share)[:, None] & (rng.random((size, slots)) < 0.3)
        use_secondary[:, :TITLE_SLOTS] = False
        slot_topic = np.where(use_secondary, secondary[:, None], topic[:, None])
        word = world.forms[slot_topic, concept, form]
        filler_share = np.where(np.arange(slots) < TITLE_SLOTS, 0.2, 0.4)
        is_filler = rng.random((size, slots)) < filler_share[None, :]
        word = np.where(is_filler, world.filler_ids[sample_cdf(rng, world.filler_cdf, (size, slots))], word)
        global_concept = np.where(is_filler | use_secondary, -1, slot_topic * n_concepts + concept)
        world.pin_concepts[start:end] = global_concept[:, :PIN_CONCEPT_SLOTS]
        title_length = rng.integers(3, TITLE_SLOTS + 1, size=size)
        description_length = rng.integers(6, DESCRIPTION_SLOTS + 1, size=size)
        n_annotations = rng.integers(2, 5, size=size)
        annotation_words = world.forms[topic[:, None], concept[:, :4], 0]  # canonical forms of title concepts
        has_link = rng.random(size) < 0.7
        words = world.vocab[word].tolist()
        annotations = world.vocab[annotation_words].tolist()
        pins = []
        for row in range(size):
            # A form drawn twice for one field is written once, as a person would.
            title_words = dict.fromkeys(words[row][: title_length[row]])
            description_words = dict.fromkeys(words[row][TITLE_SLOTS : TITLE_SLOTS + description_length[row]])
            pin: dict[str, Any] = {
                "id": pin_id(start + row),
                "title": " ".join(title_words).capitalize(),
                "description": " ".join(description_words) + ".",
                "board": world.topic_names[topic[row]],
                "annotations": list(dict.fromkeys(annotations[row][: n_annotations[row]])),
            }
            if has_link[row]:
                pin["link"] = f"https://example.com/{pin['id']}"
            pins.append(pin)
        yield pins


def users_as_records(world: World) -> list[dict[str, Any]]:
    """User records with their interest texts."""
    return [
        {"id": user_id(user), "interests": [" ".join(world.vocab[ids].tolist()) for ids in interests]}
        for user, interests in enumerate(world.user_interest_texts)
    ]


def query_text(world: World, topic: int, query: int) -> str:
    ids = world.query_words[topic, query]
    return " ".join(world.vocab[ids[ids >= 0]].tolist())


MAX_SLATE = 14  # pins shown per session: 6..14


@dataclass
class SessionChunk:
    """One vectorized batch of sessions: who, where, what was shown and what the user did."""

    user: np.ndarray
    surface: np.ndarray
    topic: np.ndarray
    query: np.ndarray
    subject: np.ndarray
    shown: np.ndarray  # [session, slot] pin index
    visible: np.ndarray  # [session, slot] bool (slate length)
    click: np.ndarray
    save: np.ndarray
    hide: np.ndarray


def simulate_sessions(world: World, rng: np.random.Generator, size: int) -> SessionChunk:
    """Draw `size` sessions and the user's reaction to every pin shown."""
    config = world.config
    n_topics = world.forms.shape[0]
    user = sample_cdf(rng, world.user_activity_cdf, size)
    surface = sample_cdf(rng, np.cumsum(config.surface_probs), size)
    interest_slot = (rng.random(size)[:, None] > world.user_weight_cdf[user]).sum(axis=1)
    interest_slot = np.minimum(interest_slot, 3)
    topic = world.user_topics[user, interest_slot]
    explore = rng.random(size) < config.explore_prob
    topic = np.where(explore | (topic < 0), rng.integers(n_topics, size=size), topic)
    query = sample_cdf(rng, world.query_cdf, size)
    subject = _pins_of_topic(world, rng, topic)

    # Slot topics: search and related stay on the session topic; home feed mixes all of the user's interests.
    slot_interest = (rng.random((size, MAX_SLATE))[:, :, None] > world.user_weight_cdf[user][:, None, :]).sum(axis=2)
    slot_topic = world.user_topics[user[:, None], np.minimum(slot_interest, 3)]
    slot_topic = np.where((surface[:, None] == HOMEFEED_CODE) & (slot_topic >= 0), slot_topic, topic[:, None])
    on_topic_prob = np.asarray(config.on_topic_impression_prob)[surface]
    on_topic = rng.random((size, MAX_SLATE)) < on_topic_prob[:, None]
    shown = np.where(on_topic, _pins_of_topic(world, rng, slot_topic),
                     sample_cdf(rng, world.pin_popularity_cdf, (size, MAX_SLATE)))
    # A related slate never shows its own subject: swap it for a popular pin from anywhere.
    is_subject = (surface[:, None] == RELATED_CODE) & (shown == subject[:, None])
    swapped = (shown + 1 + sample_cdf(rng, world.pin_popularity_cdf, shown.shape)) % config.n_pins
    shown = np.where(is_subject, swapped, shown)
    visible = np.arange(MAX_SLATE)[None, :] < rng.integers(6, MAX_SLATE + 1, size=size)[:, None]

    relevance = _relevance(world, user, surface, topic, query, subject, shown)
    position_bias = 1.0 / (1.0 + POSITION_DECAY * np.arange(MAX_SLATE))[None, :]
    click = rng.random(shown.shape) < CLICK_PROB[relevance] * position_bias
    save = np.where(
        click,
        rng.random(shown.shape) < SAVE_AFTER_CLICK_PROB[relevance],
        rng.random(shown.shape) < SAVE_WITHOUT_CLICK_PROB[relevance] * position_bias,
    )
    regret = click & (relevance == 0) & (rng.random(shown.shape) < REGRET_HIDE_PROB)
    hide = (~click & ~save & (rng.random(shown.shape) < HIDE_PROB[relevance])) | regret
    save &= ~regret
    return SessionChunk(user, surface, topic, query, subject, shown, visible, click & visible, save & visible,
                        hide & visible)


def _pins_of_topic(world: World, rng: np.random.Generator, topic: np.ndarray) -> np.ndarray:
    """One pin per entry of `topic`, drawn by popularity among that topic's pins."""
    target = topic + rng.random(topic.shape)
    position = np.searchsorted(world.topic_offset_cdf, target, side="right")
    position = np.minimum(position, len(world.topic_pin_order) - 1)
    pins = world.topic_pin_order[position]
    # A topic that got no pins at all falls back to a popular pin from anywhere.
    empty = world.pin_topic[pins] != topic
    if empty.any():
        pins = np.where(empty, sample_cdf(rng, world.pin_popularity_cdf, topic.shape), pins)
    return pins


def _relevance(world, user, surface, topic, query, subject, shown) -> np.ndarray:
    """0 off-topic, 1 on-topic, 2 on-topic and sharing a concept with the query or subject pin."""
    shown_topic = world.pin_topic[shown]
    user_topics = world.user_topics[user]
    on_interest = (shown_topic[:, :, None] == user_topics[:, None, :]).any(axis=2)
    on_topic = np.where(surface[:, None] == HOMEFEED_CODE, on_interest, shown_topic == topic[:, None])
    anchor_concepts = np.where(
        (surface == SEARCH_CODE)[:, None],
        world.query_concepts[topic, query],
        world.pin_concepts[subject, :3],
    )
    anchor_concepts = np.where((surface == HOMEFEED_CODE)[:, None], -1, anchor_concepts)
    pin_concepts = world.pin_concepts[shown]  # [session, slot, concepts]
    shares = (pin_concepts[:, :, :, None] == anchor_concepts[:, None, None, :]) & (pin_concepts[:, :, :, None] >= 0)
    # Home feed has no query: a pin from one of the user's own interests is as good as it gets there.
    on_concept = shares.any(axis=(2, 3)) | (surface == HOMEFEED_CODE)[:, None]
    return on_topic.astype(np.int64) + (on_topic & on_concept)


def generate_events(world: World, chunk_sessions: int = 5000) -> Iterator[dict[str, Any]]:
    """Exactly `n_events` events, session after session, with a few duplicated deliveries."""
    config = world.config
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(6)[5])
    start = datetime.fromisoformat(config.start).timestamp()
    span = config.days * 86400.0
    expected_sessions = max(1, config.n_events // 12)
    emitted = 0
    session_number = 0
    event_number = 0
    while emitted < config.n_events:
        chunk = simulate_sessions(world, rng, chunk_sessions)
        duplicate = rng.random((chunk_sessions, MAX_SLATE, 4)) < config.duplicate_event_rate
        for row in range(chunk_sessions):
            session_start = start + span * min(session_number / expected_sessions, 1.0) + rng.random() * 60
            base = _session_fields(world, chunk, row, session_number)
            session_number += 1
            for slot in np.flatnonzero(chunk.visible[row]):
                for kind, (action, happened) in enumerate(
                    (("impression", True), ("click", chunk.click[row, slot]),
                     ("save", chunk.save[row, slot]), ("hide", chunk.hide[row, slot]))
                ):
                    if not happened:
                        continue
                    event_number += 1
                    event = {
                        "event_id": f"e{config.seed}-{event_number:010d}",
                        "ts": _iso(session_start + 3.0 * slot + kind),
                        **base,
                        "action": action,
                        "pin_id": pin_id(chunk.shown[row, slot]),
                        "position": int(slot),
                    }
                    copies = 2 if duplicate[row, slot, kind] else 1
                    for _ in range(copies):
                        yield event
                        emitted += 1
                        if emitted >= config.n_events:
                            return


def _session_fields(world: World, chunk: SessionChunk, row: int, session_number: int) -> dict[str, Any]:
    surface = SURFACES[chunk.surface[row]]
    fields: dict[str, Any] = {
        "user_id": user_id(chunk.user[row]),
        "session_id": f"s{world.config.seed}-{session_number:08d}",
        "surface": surface,
    }
    if surface == SEARCH:
        fields["query"] = query_text(world, int(chunk.topic[row]), int(chunk.query[row]))
    elif surface == RELATED:
        fields["subject_pin_id"] = pin_id(chunk.subject[row])
    return fields


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


ProgressCallback = Callable[[str, int], None]


def _write_jsonl(handle: IO[str], records: list[dict[str, Any]]) -> None:
    handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def generate(
    config: SynthConfig,
    out_dir: str | Path,
    progress: ProgressCallback | None = None,
    gzip_events: bool = False,
) -> dict[str, Any]:
    """Write pins.jsonl, users.jsonl and events.jsonl (events.jsonl.gz with `gzip_events`) into `out_dir`.

    Files are written under temporary names and renamed at the end, so a re-run never leaves a half file.
    `progress(kind, n)` is called as records are written. Returns counts and timings.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = lambda kind, n: progress(kind, n) if progress else None  # noqa: E731
    timings: dict[str, float] = {}
    started = time.perf_counter()
    world = build_world(config)
    timings["world_s"] = time.perf_counter() - started

    started = time.perf_counter()
    with _atomic_text(out / "pins.jsonl") as handle:
        for pins in generate_pins(world):
            _write_jsonl(handle, pins)
            report("pins", len(pins))
    timings["pins_s"] = time.perf_counter() - started

    started = time.perf_counter()
    users = users_as_records(world)
    with _atomic_text(out / "users.jsonl") as handle:
        _write_jsonl(handle, users)
    report("users", len(users))
    timings["users_s"] = time.perf_counter() - started

    started = time.perf_counter()
    events_path = out / ("events.jsonl.gz" if gzip_events else "events.jsonl")
    with _atomic_text(events_path) as handle:
        batch: list[dict[str, Any]] = []
        for event in generate_events(world):
            batch.append(event)
            if len(batch) == 10_000:
                _write_jsonl(handle, batch)
                report("events", len(batch))
                batch = []
        _write_jsonl(handle, batch)
        report("events", len(batch))
    timings["events_s"] = time.perf_counter() - started
    return {
        "pins": config.n_pins,
        "users": config.n_users,
        "events": config.n_events,
        "topics": config.topics(),
        "files": [str(out / "pins.jsonl"), str(out / "users.jsonl"), str(events_path)],
        "vocabulary": len({word for form in world.vocab for word in form.split()}),
        "ambiguous_words": world.ambiguous_words,
        "config": asdict(config),
        **{key: round(value, 3) for key, value in timings.items()},
    }


class _atomic_text:
    """Write a text file under a temporary name; rename over the target only if writing succeeded.

    A `.gz` target is gzip-compressed with a zero timestamp, so the same seed gives the same bytes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")

    def __enter__(self) -> IO[str]:
        self.raw = self.partial.open("wb")
        self.zipped: gzip.GzipFile | None = None
        stream: IO[bytes] | gzip.GzipFile = self.raw
        if self.path.suffix == ".gz":
            self.zipped = stream = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0)
        self.handle: IO[str] = io.TextIOWrapper(stream, encoding="utf-8")
        return self.handle

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.handle.close()  # closes the gzip stream and the file under it
        self.raw.close()
        if exc_type is None:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)
