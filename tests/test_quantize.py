"""The one-byte vector quantizer (`pintext.quantize`): int8 values in [-127, 127], one scale per vector, zero stays
zero, idempotent on its own output, and the cosine it serves stays close to the float one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pintext.quantize import (
    DEFAULT_VECTOR_TYPE,
    FLOAT32,
    INT8,
    INT8_LIMIT,
    check_vector_type,
    quantize_int8,
    served_vectors,
)
from pintext.serving.local import cosine
from tests.fixtures_engines import in_ci

DIM = 16
fuzz = settings(max_examples=300, deadline=None, derandomize=in_ci(), database=None)
finite = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False, allow_subnormal=False).map(np.float32)
vectors = arrays(np.float32, st.tuples(st.integers(1, 5), st.just(DIM)), elements=finite)


@fuzz
@given(vectors)
@example(np.zeros((2, DIM), dtype=np.float32))
@example(np.full((1, DIM), 1e-30, dtype=np.float32))
@example(np.array([[-3.0] + [0.0] * (DIM - 1)], dtype=np.float32))
def test_each_row_is_int8_in_range_with_its_largest_component_at_the_limit_and_zero_stays_zero(rows):
    quantized = quantize_int8(rows)
    assert quantized.dtype == np.int8 and quantized.shape == rows.shape
    assert np.all(np.abs(quantized.astype(np.int16)) <= INT8_LIMIT)
    for row, values in zip(rows, quantized):
        if not np.any(row):
            assert not np.any(values)
        else:  # the row's largest |component| maps to +-127, so a nonzero vector never becomes zero
            assert int(np.max(np.abs(values.astype(np.int16)))) == INT8_LIMIT
            assert np.sign(values[np.argmax(np.abs(row))]) == np.sign(row[np.argmax(np.abs(row))])


@fuzz
@given(vectors)
def test_quantizing_the_int8_values_again_gives_them_back(rows):
    """What `related` relies on: a stored vector read back (int8 values as floats) is served unchanged."""
    once = quantize_int8(rows)
    np.testing.assert_array_equal(quantize_int8(once.astype(np.float32)), once)


@fuzz
@given(vectors, st.floats(1e-3, 1e3))
def test_scale_does_not_matter_one_scale_per_vector(rows, factor):
    """Cosine is scale-invariant per vector, and so is the quantization (up to rounding at a .5 boundary)."""
    scaled = quantize_int8(rows.astype(np.float64) * factor)
    assert np.max(np.abs(scaled.astype(np.int16) - quantize_int8(rows).astype(np.int16)), initial=0) <= 1


def test_one_vector_keeps_its_shape_and_rounds_to_nearest():
    assert quantize_int8(np.array([0.5, -1.0, 0.25, 0.0])).tolist() == [64, -127, 32, 0]


def test_cosine_of_quantized_unit_vectors_is_within_a_percent_of_the_float_cosine():
    rng = np.random.default_rng(4)
    pins = rng.normal(size=(500, 256)).astype(np.float32)
    query = pins[0] + 0.5 * rng.normal(size=256).astype(np.float32)
    exact = cosine(pins, query)
    served = cosine(quantize_int8(pins).astype(np.float64), quantize_int8(query).astype(np.float64))
    assert np.max(np.abs(served - exact)) < 0.01
    assert np.argmax(served) == np.argmax(exact) == 0


def test_non_finite_vectors_are_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_int8(np.array([1.0, np.nan]))


def test_served_vectors_follow_the_vector_type_and_the_types_are_checked():
    row = np.array([[0.2, -0.4]], dtype=np.float32)
    assert served_vectors(row, INT8).dtype == np.int8
    assert served_vectors(row, FLOAT32).dtype == np.float32 and np.array_equal(served_vectors(row, FLOAT32), row)
    assert DEFAULT_VECTOR_TYPE == INT8 and check_vector_type(FLOAT32) == FLOAT32
    with pytest.raises(ValueError, match="int8 or float32"):
        check_vector_type("float16")
