"""A pin's vector: the title's direction weighted above the description's, whatever their lengths."""

import numpy as np

from pintext.encoder import Encoder
from pintext.pin_vectors import TITLE_WEIGHT, pin_parts, pin_vectors
from pintext.trainer.tokenizer import train_word_tokenizer
from tests.factories import word_table


def _encoder(dim: int = 64) -> Encoder:
    words = ["velvet", "sofa", "kitchen", "tap", "garden", "hose"] + [f"filler{i}" for i in range(40)]
    tokenizer = train_word_tokenizer([" ".join(words)], min_count=1)
    table = word_table(tokenizer.get_vocab_size(), dim=dim, seed=0)
    table[0] = 0
    return Encoder(tokenizer, table, unk_id=0, fingerprint="t")


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_parts_are_title_and_the_rest():
    pin = {"id": "p", "title": " Velvet sofa ", "description": "deep seats", "annotations": ["blue", " "]}
    assert pin_parts(pin) == ("Velvet sofa", "deep seats blue")
    assert pin_parts({"id": "q", "description": "only this"}) == ("", "only this")


def test_title_keeps_its_weight_against_a_long_description():
    encoder = _encoder()
    long_description = " ".join(f"filler{i}" for i in range(40))
    pin = {"id": "p", "title": "velvet sofa", "description": long_description}
    vector = pin_vectors(encoder, [pin])[0]
    title = _unit(encoder.encode(["velvet sofa"])[0])
    rest = _unit(encoder.encode([long_description])[0])
    np.testing.assert_allclose(vector, TITLE_WEIGHT * title + (1 - TITLE_WEIGHT) * rest, atol=1e-6)
    whole = _unit(encoder.encode([f"velvet sofa {long_description}"])[0])
    assert _unit(vector) @ title > whole @ title + 0.3  # averaging everything at once drowns the title


def test_a_missing_part_leaves_the_other_direction_and_nothing_known_is_zero():
    encoder = _encoder()
    vectors = pin_vectors(encoder, [{"id": "a", "title": "kitchen tap"}, {"id": "b", "description": "garden hose"},
                                    {"id": "c", "title": "zzz", "description": "qqq"}])
    np.testing.assert_allclose(_unit(vectors[0]), _unit(encoder.encode(["kitchen tap"])[0]), atol=1e-6)
    np.testing.assert_allclose(_unit(vectors[1]), _unit(encoder.encode(["garden hose"])[0]), atol=1e-6)
    assert not vectors[2].any()
    assert pin_vectors(encoder, []).shape == (0, 64)
