"""Export a trained model's word table and tokenizer as the torch-free runtime folder (`MODEL/runtime/`)."""

from __future__ import annotations

from pathlib import Path

from sentence_transformers import SentenceTransformer

from pintext.encoder import RUNTIME_FOLDER, HashedWords, write_runtime
from pintext.trainer.model import word_module
from pintext.trainer.tokenizer import UNK_TOKEN


def export_runtime(
    model: SentenceTransformer, model_dir: str | Path, *, float16: bool = False, oov: HashedWords | None = None
) -> Path:
    """Write `model_dir/runtime/` (tokenizer.json, embeddings.npy, runtime.json); returns that folder."""
    module = word_module(model)
    return write_runtime(
        Path(model_dir) / RUNTIME_FOLDER,
        module.tokenizer,
        module.table(),
        dtype="float16" if float16 else "float32",
        unk_token=UNK_TOKEN,
        oov=oov,
    )
