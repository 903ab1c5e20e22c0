"""Is a hub id usable right now? Decided fast, before any model code runs.

A hub id works when its files are already in the local Hugging Face cache (then we load offline), or
when the hub answers within a couple of seconds. Otherwise we fail at configure time with one line,
instead of transformers retrying for minutes deep inside a fixture.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _is_set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def is_cached(repo_id: str) -> bool:
    """True when the repository's config.json is in the local hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return False
    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


def hub_reachable(timeout_s: float = 2.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_availability(repo_id: str) -> str | None:
    """None when ``repo_id`` can be loaded; otherwise the reason, phrased for the user."""
    if is_cached(repo_id):
        return None
    if any(_is_set(v) for v in OFFLINE_VARS):
        return (
            "is not a local directory and not in the Hugging Face cache, and offline mode is set "
            f"(HF_HUB_OFFLINE); download it first (`hf download {repo_id}`) or pass a local directory"
        )
    if not hub_reachable():
        return (
            "is not a local directory and the Hugging Face hub cannot be reached (no network); "
            f"on a connected machine run `hf download {repo_id} --local-dir DIR`, copy DIR here and pass "
            "--model_path DIR (or copy the hub cache and set HF_HUB_OFFLINE=1 to run offline)"
        )
    return None
