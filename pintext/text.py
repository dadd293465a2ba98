"""Text normalization and the word split: the one definition of "a word" in PinText.

Training and serving must cut text into exactly the same words, or the served vectors drift from the
trained ones. So the split is defined here once, with the very `tokenizers` components that the saved
tokenizer.json embeds (`build_normalizer`, `build_pre_tokenizer`), and `normalize`/`words` run those same
components. Python's `re` would not do: its `\\w` differs from the Rust regex `\\w` on combining marks
(e.g. NFKC("İ").lower() is "i" + U+0307; Rust keeps it in the word, Python's `re` splits there).

Pure: no I/O.
"""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Regex, normalizers, pre_tokenizers

#: A word is a maximal run of Unicode word characters (letters, marks, digits, connector punctuation).
WORD_PATTERN = r"\w+"


def build_normalizer() -> normalizers.Normalizer:
    """Unicode NFKC, then lowercase: full-width letters, ligatures and case all fold together."""
    return normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])


def build_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Keep the runs matching WORD_PATTERN and drop everything between them (punctuation, spaces, emoji)."""
    # invert=True: the pattern describes the pieces to keep, not the delimiters.
    return pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)


@lru_cache(maxsize=1)
def _components() -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    return build_normalizer(), build_pre_tokenizer()


def normalize(text: str) -> str:
    """NFKC + lowercase, exactly as the tokenizer's normalizer does it."""
    normalizer, _ = _components()
    return normalizer.normalize_str(text or "")


def words(text: str) -> list[str]:
    """The normalized words of `text`, in order, exactly as the tokenizer splits them."""
    _, pre_tokenizer = _components()
    return [piece for piece, _span in pre_tokenizer.pre_tokenize_str(normalize(text))]
