"""One-byte pin vectors: the one place a float vector becomes the int8 values an index of byte vectors holds.

Each vector is scaled on its own so that its largest component is +-127, then rounded: `round(v * 127 / max|v|)`.
Cosine is scale-invariant per vector, so the scale is dropped (nothing to store beside the bytes) and the engine's
exact cosine over the int8 values is the served score. A zero vector stays zero; any other vector keeps at least
one component at +-127, so it never rounds to zero (a zero stored vector makes OpenSearch's byte `cosinesimil`
return NaN and fail the whole search). Quantizing int8 values again gives them back unchanged (the scale is 1), so
a stored vector read back (`related`) is served exactly as it was written.

Measured offline on Home Depot's real queries (split 0, served ranking: cosine top 100 + the exact-match re-rank),
pins and queries both quantized: NDCG@10 0.3707 vs 0.3708 float, Recall@100 0.7740 vs 0.7740.

Which engines score byte vectors exactly (OpenSearch 2.19/3.5 `knn_vector` `data_type: byte`, Elasticsearch 8.15
`dense_vector` `element_type: byte`): docs/serving.md, "One-byte vectors".
"""

from __future__ import annotations

import numpy as np

INT8_LIMIT = 127  # symmetric: -128 is never produced, so a vector and its negation quantize alike
FLOAT32 = "float32"
INT8 = "int8"
VECTOR_TYPES = (INT8, FLOAT32)
# New indexes store one-byte vectors: a quarter of the flat vector store, a third of the bulk JSON, same quality.
DEFAULT_VECTOR_TYPE = INT8
# What an index whose `_meta` names no vector type holds (every index made before this setting existed).
UNRECORDED_VECTOR_TYPE = FLOAT32


def check_vector_type(name: str) -> str:
    """`name` when it is a vector type PinText stores; ValueError naming the choices otherwise."""
    if name not in VECTOR_TYPES:
        raise ValueError(f"unknown vector type {name!r}: choose {' or '.join(VECTOR_TYPES)}")
    return name


def quantize_int8(vectors: np.ndarray) -> np.ndarray:
    """Rows (or one vector) of floats as int8 values in [-127, 127], each row scaled by its own largest |component|
    (see the module docstring); zero rows stay zero. Non-finite input is refused (it has no direction)."""
    values = np.asarray(vectors, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("cannot quantize a vector with NaN or infinite components")
    rows = np.atleast_2d(values)
    largest = np.max(np.abs(rows), axis=-1, keepdims=True) if rows.shape[-1] else np.zeros((rows.shape[0], 1))
    scale = np.divide(INT8_LIMIT, largest, out=np.zeros_like(largest), where=largest > 0)
    quantized = np.clip(np.rint(rows * scale), -INT8_LIMIT, INT8_LIMIT).astype(np.int8)
    return quantized.reshape(values.shape)


def served_vectors(vectors: np.ndarray, vector_type: str) -> np.ndarray:
    """What an index of `vector_type` holds (and a query to it sends) for these vectors: int8 values (an int8 array,
    so the bulk JSON carries integers), or the float32 values as they are."""
    if check_vector_type(vector_type) == INT8:
        return quantize_int8(vectors)
    return np.asarray(vectors, dtype=np.float32)
