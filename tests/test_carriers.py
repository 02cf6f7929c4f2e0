"""Carriers: round trips, bounds, canonical messages, what survives and what destroys bits."""

from __future__ import annotations

import io as pyio
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from backdoors.errors import InvalidInputError
from backdoors.hazmat.carriers import Carrier, FloatFractionCarrier, LSBCarrier

LSB = LSBCarrier.plan(64, 40, seed=3)
FLT = FloatFractionCarrier.plan(8, 100, max_abs=1000.0)


@settings(max_examples=60, deadline=None)
@given(
    X=arrays(np.uint8, (5, 64)),
    seed=st.integers(0, 2**32 - 1),
)
def test_lsb_roundtrip_and_bounds(X, seed):
    bits = np.random.default_rng(seed).integers(0, 2, (5, LSB.capacity)).astype(np.uint8)
    Y = LSB.embed(X, bits)
    assert np.array_equal(LSB.extract(Y), bits)
    assert np.array_equal(LSB.clear(Y), LSB.clear(X))
    d = np.abs(Y.astype(int) - X.astype(int))
    assert d.max() <= LSB.linf_bound and (d > 0).sum(axis=1).max() <= LSB.l0_bound
    assert np.array_equal(LSB.extract(Y, 3, 17), bits[:, 3:17])


@settings(max_examples=60, deadline=None)
@given(
    X=arrays(np.float64, (4, 8), elements=st.floats(-999, 999, allow_subnormal=True)),
    seed=st.integers(0, 2**32 - 1),
)
def test_float_roundtrip_and_bounds(X, seed):
    bits = np.random.default_rng(seed).integers(0, 2, (4, FLT.capacity)).astype(np.uint8)
    Y = FLT.embed(X, bits)
    assert np.array_equal(FLT.extract(Y), bits)
    assert np.array_equal(FLT.clear(Y), FLT.clear(X))
    assert np.abs(Y - X).max() < FLT.linf_bound
    assert np.array_equal(FLT.extract(Y, 5, 31), bits[:, 5:31])


def test_float_carrier_survives_lossless_roundtrips_and_dies_in_float32():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 300, (20, 8))
    bits = rng.integers(0, 2, (20, FLT.capacity)).astype(np.uint8)
    Y = FLT.embed(X, bits)
    buf = pyio.BytesIO()
    np.save(buf, Y)
    buf.seek(0)
    for back in (np.load(buf), np.array(json.loads(json.dumps(Y.tolist()))), np.array(Y.tolist())):
        assert np.array_equal(FLT.extract(back), bits)
    cast = Y.astype(np.float32).astype(np.float64)
    assert (FLT.extract(cast) == bits).mean() < 0.75  # float32 keeps ~24 mantissa bits: gone


def test_clear_is_canonical_for_signed_zero():
    X = np.array([[-0.0] * 8, [0.0] * 8])
    C = FLT.clear(X)
    assert C[0].tobytes() == C[1].tobytes()


def test_carrier_validation_and_serialisation():
    assert Carrier.from_dict(LSB.to_dict()) == LSB
    assert Carrier.from_dict(FLT.to_dict()) == FLT
    with pytest.raises(InvalidInputError, match="dtype"):
        LSB.check(np.zeros((2, 64), dtype=np.int64))
    with pytest.raises(InvalidInputError, match="features"):
        LSB.check(np.zeros((2, 63), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="NaN"):
        FLT.check(np.full((1, 8), np.nan))
    with pytest.raises(InvalidInputError, match="range"):
        FLT.check(np.full((1, 8), 1e12))
    with pytest.raises(InvalidInputError, match="do not fit"):
        LSBCarrier.plan(64, 65)
    with pytest.raises(InvalidInputError, match="bits must"):
        LSB.embed(np.zeros((1, 64), np.uint8), np.full((1, LSB.capacity), 2))


def test_lsb_extract_of_a_tag_run_equals_column_indexing():
    """A carrier whose first bits are a run of pixels reads that run as one slice; every
    ``(start, stop)`` (in the run, across its end, past it) gives the bits of the columns."""
    c = LSBCarrier.plan(64, 40, seed=5, window=12)
    X = np.random.default_rng(1).integers(0, 256, (30, 64), dtype=np.uint8)
    pos = np.asarray(c.positions)
    for start, stop in ((0, 12), (0, 1), (2, 9), (0, 13), (5, None), (0, None), (12, 20)):
        want = (X[:, pos[start:stop]] & 1).astype(np.uint8)
        got = c.extract(X, start, stop)
        assert got.dtype == np.uint8 and (got == want).all(), (start, stop)
