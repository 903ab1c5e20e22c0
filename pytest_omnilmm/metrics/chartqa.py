"""ChartQA relaxed accuracy: numbers within a relative tolerance, anything else by exact string."""

from __future__ import annotations

from collections.abc import Sequence

from .flavors import DEFAULT_FLAVOR, VLMEVALKIT, VLMEVALKIT_2025_01, MetricError, check_flavor

RELAXED_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01)


def parse_number(text: str) -> float | None:
    """Python's ``float`` of the text, a trailing ``%`` meaning hundredths; None when it is not a number.

    No thousands separators: ``"1,000"`` is not a number and falls back to string comparison.
    """
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_match(target: str, candidate: str, tolerance: float = 0.05) -> bool:
    """pix2struct's relaxed correctness with ``target`` as the divisor.

    Numeric when both parse and the target is non-zero: ``|candidate - target| / |target| <= tolerance``,
    in float arithmetic (so ``"1.05"`` vs ``"1"`` gives 0.050000000000000044 and fails, while ``"105"``
    vs ``"100"`` gives exactly 0.05 and passes). Otherwise (text, or a zero target) the lower-cased
    strings must be equal.
    """
    target_value = parse_number(target)
    candidate_value = parse_number(candidate)
    if candidate_value is not None and target_value:
        return abs(candidate_value - target_value) / abs(target_value) <= tolerance
    return candidate.lower() == target.lower()


def relaxed_accuracy(
    prediction: str, references: Sequence[str], flavor: str = DEFAULT_FLAVOR, tolerance: float = 0.05
) -> float:
    """1.0 when the stripped prediction relaxed-matches any reference, else 0.0.

    Current VLMEvalKit measures the error relative to the reference (``95`` for ``100`` passes); the
    copy vendored in MiniCPM-V passed the arguments the other way round and measures it relative to
    the prediction (``5 / 95`` fails), falling back to string comparison when the *prediction* is 0.
    References are used as given (not stripped), as both do.
    """
    check_flavor("relaxed_accuracy", flavor, RELAXED_FLAVORS)
    if not references:
        raise MetricError("relaxed_accuracy needs at least one reference; this sample has none")
    pred = prediction.strip()
    if flavor == VLMEVALKIT_2025_01:
        hit = any(relaxed_match(pred, ref, tolerance) for ref in references)
    else:
        hit = any(relaxed_match(ref, pred, tolerance) for ref in references)
    return 1.0 if hit else 0.0
