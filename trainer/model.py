"""The PinText model: one word table, a text is the mean of its KNOWN words' vectors.

`WordMeanEmbedding` is sentence-transformers' `StaticEmbedding` with one change: the unknown token is the
EmbeddingBag's `padding_idx`, which torch excludes from the mean (and never updates). So out-of-vocabulary
words are ignored rather than averaged in as a shared "[UNK]" vector, and a text with no known word gets
the zero vector, exactly as the numpy `pintext.Encoder` computes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding
from tokenizers import Tokenizer
from torch import nn

from pintext.text import WordIds
from pintext.trainer.tokenizer import UNK_ID, UNK_TOKEN


class WordMeanEmbedding(StaticEmbedding):
    """StaticEmbedding whose unknown token is ignored by the mean (EmbeddingBag `padding_idx`)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        embedding_weights: np.ndarray | torch.Tensor | None = None,
        embedding_dim: int | None = None,
        init_std: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(tokenizer, embedding_weights=embedding_weights, embedding_dim=embedding_dim, **kwargs)
        unk_id = tokenizer.token_to_id(UNK_TOKEN)
        if unk_id != UNK_ID:
            raise ValueError(f"the tokenizer must have {UNK_TOKEN} at id {UNK_ID}, found {unk_id}")
        if embedding_weights is None:
            # Small random start: cosine is scale-free, but small rows keep the first Adam steps meaningful.
            weights = torch.randn(self.num_embeddings, self.embedding_dim) * init_std
        else:
            weights = self.embedding.weight.detach().clone()
        weights[UNK_ID] = 0.0
        self.embedding = nn.EmbeddingBag.from_pretrained(weights, freeze=False, mode="mean", padding_idx=UNK_ID)

        self._word_ids = WordIds(self.tokenizer, UNK_ID)

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Token ids and bag offsets of texts (the only input this module takes), through the same exact fast word
        lookup as the numpy Encoder."""
        if prompt:
            inputs = self._prepend_prompt(list(inputs), prompt)
        per_text = self._word_ids(list(inputs))
        lengths = [len(ids) for ids in per_text]
        offsets = torch.from_numpy(np.cumsum([0] + lengths[:-1]))
        input_ids = torch.tensor(list(itertools.chain.from_iterable(per_text)), dtype=torch.long)
        return {"input_ids": input_ids, "offsets": offsets}

    @classmethod
    def load(cls, model_name_or_path: str, *args: Any, **kwargs: Any) -> "WordMeanEmbedding":
        """Load what `save` wrote (the parent's loader would rebuild a plain StaticEmbedding)."""
        plain = StaticEmbedding.load(model_name_or_path, *args, **kwargs)
        return cls(plain.tokenizer, embedding_weights=plain.embedding.weight.detach())

    def table(self) -> np.ndarray:
        """The word table as a float32 numpy array [vocab, dim]."""
        return self.embedding.weight.detach().cpu().numpy().astype(np.float32)


def build_model(
    tokenizer: Tokenizer, dim: int = 64, seed: int = 0, device: str | None = None, weights: np.ndarray | None = None
) -> SentenceTransformer:
    """A SentenceTransformer of one WordMeanEmbedding module over `tokenizer`, starting from `weights`
    ([vocab, dim], see `pintext.trainer.init`) or from small random rows."""
    torch.manual_seed(seed)
    if weights is not None:
        module = WordMeanEmbedding(tokenizer, embedding_weights=np.asarray(weights, dtype=np.float32))
    else:
        module = WordMeanEmbedding(tokenizer, embedding_dim=dim)
    return SentenceTransformer(modules=[module], device=device)


def word_module(model: SentenceTransformer) -> WordMeanEmbedding:
    """The model's word table module."""
    module = model[0]
    if not isinstance(module, WordMeanEmbedding):
        raise TypeError(f"not a PinText model: first module is {type(module).__name__}")
    return module


def load_model(path: str | Path, device: str | None = None) -> SentenceTransformer:
    """Load a saved PinText model: `SentenceTransformer(path, trust_remote_code=True)`."""
    # trust_remote_code only lets sentence-transformers import WordMeanEmbedding from the installed pintext
    # package; nothing is downloaded or read from the model folder besides weights and tokenizer.
    return SentenceTransformer(str(path), device=device, trust_remote_code=True)
