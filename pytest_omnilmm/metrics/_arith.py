"""Floating-point sums done the way the references do them, so per-sample values match bit for bit."""

from __future__ import annotations

from collections.abc import Sequence

_BLOCK = 128  # numpy's pairwise-summation block size
_UNROLL = 8  # numpy's accumulator count inside a block


def numpy_sum(values: Sequence[float]) -> float:
    """The sum ``numpy.add.reduce`` computes for a contiguous float64 array (pairwise summation).

    VLMEvalKit averages per-reference matches with ``np.mean``; numpy adds eight interleaved partial
    sums, so a plain left-to-right ``sum`` can differ in the last bit for ten references.
    """
    n = len(values)
    if n < _UNROLL:
        total = 0.0
        for v in values:
            total += v
        return total
    if n <= _BLOCK:
        acc = [float(v) for v in values[:_UNROLL]]
        i = _UNROLL
        body_end = n - n % _UNROLL
        while i < body_end:
            for j in range(_UNROLL):
                acc[j] += values[i + j]
            i += _UNROLL
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        for v in values[i:]:
            total += v
        return total
    half = n // 2
    half -= half % _UNROLL
    return numpy_sum(values[:half]) + numpy_sum(values[half:])


def numpy_mean(values: Sequence[float]) -> float:
    """``float(np.mean(values))`` without numpy; NaN for an empty sequence, as numpy gives."""
    if not values:
        return float("nan")
    return numpy_sum(values) / len(values)
