"""pintext.text: NFKC + lowercase and the word split, identical to the trained tokenizer's."""

import pytest

from pintext.text import normalize, words
from pintext.trainer.tokenizer import UNK_TOKEN, train_word_tokenizer

SAMPLES = [
    "Héllo, WORLD!!",
    "ﬁne_tune x2",  # ligature folds under NFKC, underscore is a word character
    "ＦＵＬＬ－ＷＩＤＴＨ ２０２４",  # full-width letters and digits fold under NFKC
    "İstanbul café-au-lait",  # dotted capital I lowercases to i + combining dot, kept inside the word
    "北京 😀 a\u0301",  # CJK run, emoji dropped, combining accent composed by NFKC
    "",
    "   ...  ",
]


def test_normalize_folds_compatibility_forms_and_case():
    assert normalize("ＡＢＣ ﬁ Straße") == "abc fi straße"
    assert normalize("") == ""


def test_words_split_on_non_word_characters():
    assert words("Red-Velvet CAKE, 2 layers!") == ["red", "velvet", "cake", "2", "layers"]
    assert words("ＦＵＬＬ－ＷＩＤＴＨ") == ["full", "width"]
    assert words("") == []
    assert words("?!  😀") == []


@pytest.mark.parametrize("text", SAMPLES)
def test_tokenizer_splits_exactly_like_words(text):
    tokenizer = train_word_tokenizer([" ".join(words(sample)) for sample in SAMPLES] * 2, min_count=1)
    assert tokenizer.encode(text, add_special_tokens=False).tokens == words(text)


def test_unknown_words_map_to_the_unknown_token():
    tokenizer = train_word_tokenizer(["apple pie", "apple tart"], min_count=2)
    assert tokenizer.encode("Apple crumble", add_special_tokens=False).tokens == ["apple", UNK_TOKEN]


def test_vocabulary_respects_min_count_and_max_size():
    texts = ["a a a a b b b c c d"]
    assert set(train_word_tokenizer(texts, min_count=2).get_vocab()) == {UNK_TOKEN, "a", "b", "c"}
    assert set(train_word_tokenizer(texts, min_count=1, max_size=3).get_vocab()) == {UNK_TOKEN, "a", "b"}
