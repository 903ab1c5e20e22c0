"""Value parsers: one raw setting (option, env or ini text) in, a typed value out, or a one-line
``ConfigError`` that starts with the option's flag (``build_config`` then names the env variable or ini
key instead when the value came from there). Pure: no file system, no subprocess, no network."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


class ConfigError(Exception):
    """A bad setting: the message is one line naming the option, the value and what to do."""


def parse_int(flag: str, raw: object, *, minimum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(
            f"{flag}: {raw!r} is not a whole number; give e.g. {flag} {max(minimum, 1)}"
        ) from None
    if value < minimum:
        raise ConfigError(f"{flag}: {value} is too small; it must be at least {minimum}")
    return value


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() in {"1", "true", "yes", "on"}


def parse_threads(raw: object) -> int | None:
    if raw in (None, ""):
        return None  # decided per process, where the worker count is known
    return parse_int("--threads", raw, minimum=1)


def parse_path(raw: object, rootdir: Path) -> Path | None:
    """A path as given (``~`` expanded), relative to ``rootdir``; None when not set."""
    if raw in (None, ""):
        return None
    path = Path(os.path.expanduser(str(raw)))
    return path if path.is_absolute() else rootdir / path


def parse_data(entries: Sequence[str], *, base: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """``NAME=PATH`` or ``NAME=PATH,images=DIR`` entries (relative paths against ``base``, the rootdir).

    Returns the data files and, for the entries that name one, the folder their image paths are relative to.
    """
    data: dict[str, Path] = {}
    images: dict[str, Path] = {}

    def absolute(raw: str) -> Path:
        path = Path(os.path.expanduser(raw.strip()))
        return path if path.is_absolute() else base / path

    for entry in entries:
        entry = str(entry).strip()
        if not entry:
            continue
        name, sep, raw_path = entry.partition("=")
        raw_path, comma, image_part = raw_path.partition(",images=")
        if not sep or not name.strip() or not raw_path.strip() or (comma and not image_part.strip()):
            raise ConfigError(
                f"--data: {entry!r} is not NAME=PATH or NAME=PATH,images=DIR; give e.g. "
                "--data textvqa=/data/TextVQA_0.5.1_val.json or --data docvqa=val.json,images=/data/docs"
            )
        data[name.strip()] = absolute(raw_path)
        if comma:
            images[name.strip()] = absolute(image_part)
    return data, images


def parse_fraction(flag: str, raw: object) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{flag}: {raw!r} is not a number; give e.g. {flag} 0.01") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"{flag}: {value} is outside 0..1; scores are fractions, so one point is 0.01")
    return value


def parse_margin_map(value: str | Iterable[str], *, option: str = "--max-drop") -> dict[str, float]:
    """``"textvqa=0.02, vqa_accuracy=0.03"`` (or ini lines) -> ``{"textvqa": 0.02, ...}``."""
    parts = [value] if isinstance(value, str) else list(value)
    out: dict[str, float] = {}
    for part in parts:
        for item in re.split(r"[,\n]", part):
            item = item.strip()
            if not item:
                continue
            name, sep, number = item.partition("=")
            name, number = name.strip(), number.strip()
            if not sep or not name:
                raise ValueError(f"{option}: {item!r} is not NAME=NUMBER (e.g. textvqa=0.6)")
            try:
                parsed = float(number)
            except ValueError:
                raise ValueError(
                    f"{option}: {item!r}: {number!r} is not a number (e.g. {name}=0.6)"
                ) from None
            if not math.isfinite(parsed):
                raise ValueError(f"{option}: {item!r}: the number must be finite")
            if name in out and out[name] != parsed:
                raise ValueError(f"{option}: {name!r} is given twice ({out[name]} and {parsed}); keep one")
            out[name] = parsed
    return out


def parse_name_values(flag: str, raw: object, example: str) -> dict[str, float]:
    """Repeated ``NAME=FRACTION`` settings (``--max-drop-for``, ``--min-score``)."""
    entries = [raw] if isinstance(raw, str) else [str(e) for e in raw or []]
    try:
        parsed = parse_margin_map(entries, option=flag)
    except ValueError as exc:
        raise ConfigError(f"{exc}; give e.g. {flag} {example}") from None
    return {name: parse_fraction(f"{flag} {name}", value) for name, value in parsed.items()}


def parse_percent(value: str | float, *, option: str = "--max-slowdown") -> float:
    """``"10%"`` or ``"0.10"`` -> 0.10; a bare number above 1 is refused as ambiguous."""
    text = str(value).strip()
    is_percent = text.endswith("%")
    try:
        number = float(text[:-1].strip() if is_percent else text)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a percentage; write e.g. 10% or 0.10") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{option}: {text!r} must be a percentage >= 0, e.g. 10%")
    if is_percent:
        return number / 100.0
    if number > 1:
        raise ValueError(f"{option}: {text!r} is ambiguous; write {text}% or {number / 100:g} (a fraction)")
    return number


def parse_percent_setting(flag: str, raw: object) -> float:
    """``parse_percent`` for a setting: a bad value is a ``ConfigError``."""
    try:
        return parse_percent(str(raw), option=flag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_shard(raw: object) -> tuple[int, int] | None:
    if raw in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(raw))
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise ConfigError(f"--shard: {raw!r} is not I/N with 0 <= I < N; give e.g. --shard 0/4")
    return int(m.group(1)), int(m.group(2))


def visible_devices(env: Mapping[str, str]) -> list[str] | None:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` restricts this process to; None when it is unset or blank."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return None
    return [v.strip() for v in visible.split(",") if v.strip()]


def parse_gpus(raw: object, env: Mapping[str, str]) -> tuple[str, ...] | None:
    """``--gpus all`` or ``0,1,...``, mapped through ``CUDA_VISIBLE_DEVICES`` when that is set.

    None for ``all`` without ``CUDA_VISIBLE_DEVICES``: only the machine knows (``probes.probe_gpus`` asks
    nvidia-smi, and checks that listed GPUs exist when no restriction is set).
    """
    if raw in (None, ""):
        return ()
    text = str(raw).strip()
    allowed = visible_devices(env)
    if text == "all":
        return None if allowed is None else tuple(allowed)
    ids = tuple(v.strip() for v in text.split(",") if v.strip())
    if not ids or not all(re.fullmatch(r"\d+|GPU-[\w-]+|MIG-[\w-]+", v) for v in ids):
        raise ConfigError(f"--gpus: {text!r} is not a GPU list; give 'all' or ids like 0,1,2,3")
    if allowed is None:
        return ids
    # Respect an existing restriction: --gpus indexes into the GPUs this process may see.
    mapped = []
    for v in ids:
        if not v.isdigit() or int(v) >= len(allowed):
            raise ConfigError(
                f"--gpus {text}: GPU {v} is not among CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}; "
                f"use indices 0..{len(allowed) - 1}"
            )
        mapped.append(allowed[int(v)])
    return tuple(mapped)
