"""English topic vocabularies for the synthetic generator, written for PinText (no outside word list).

Each topic has a board name and 40 concept groups. A group is one line of 2-3 words that people use for the
same thing: the first is the "catalogue" word a pin is most likely to use (sofa), the others are the words
people also type (couch, settee). Synonyms here are loose on purpose, as in real search logs: true synonyms
(fridge / refrigerator), regional variants (jumper / sweater), near-synonyms (trail / path / footpath) and
paraphrase words (recipe / dish). A few words belong to several topics (pot, frame, sheet, board), which makes
them ambiguous the way real words are.

`TOPICS` is parsed once, at import, from `vocabulary.txt` next to this module (shipped with the package): a line
`# board name` starts a topic, each following line is a concept group. `pintext.ingest.synth.generator` draws its
topics from here; the checks in tests/test_synth.py keep the text well formed (every word a single lowercase word,
no word twice in one topic, no generic filler word).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class Topic:
    """One latent interest: its board name and its concept groups (catalogue word first)."""

    name: str
    concepts: tuple[tuple[str, ...], ...]


def parse_topics(text: str) -> tuple[Topic, ...]:
    """Topics from `# name` headers, each followed by one concept group per line."""
    topics: list[Topic] = []
    name: str | None = None
    concepts: list[tuple[str, ...]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if name is not None:
                topics.append(Topic(name, tuple(concepts)))
            name, concepts = line.lstrip("#").strip(), []
            continue
        concepts.append(tuple(line.lower().split()))
    if name is not None:
        topics.append(Topic(name, tuple(concepts)))
    return tuple(topics)


#: The topic vocabulary: a data file of this package.
VOCABULARY_FILE = "vocabulary.txt"
TOPICS: tuple[Topic, ...] = parse_topics(files(__package__).joinpath(VOCABULARY_FILE).read_text(encoding="utf-8"))

__all__ = ["Topic", "TOPICS", "parse_topics"]
