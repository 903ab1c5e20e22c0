"""The HTTP side of an OpenAI-compatible server, shared by the ``openai`` backend and the judge model:
requests with an optional bearer key, one call with its failure kinds told apart, the retry policy.
Standard library only.

A failed call is one of: an HTTP status (returned, the caller decides), ``TimeoutError`` (worth a retry),
or ``Unreachable`` (nothing answers at the base URL: retrying will not help).
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from typing import Any

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): 0.5, 1, 2, 4, then 8 at most."""
    return min(8.0, 0.5 * 2 ** (attempt - 1))


class Unreachable(Exception):
    """Nothing answered at the base URL (refused, reset, unknown host); ``reason`` is what the socket said."""

    def __init__(self, exc: BaseException) -> None:
        self.reason: object = getattr(exc, "reason", exc)
        super().__init__(str(self.reason))


class ChatClient:
    """Requests to one server. The key (if any) goes in the Authorization header and nowhere else."""

    def __init__(self, base: str, key: str = "") -> None:
        self.base = base.rstrip("/")
        self._key = key

    def request(self, method: str, path: str, payload: dict[str, Any] | None) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = None if payload is None else json.dumps(payload).encode()
        return urllib.request.Request(self.base + path, data=data, headers=headers, method=method)

    def call(self, method: str, path: str, payload: dict[str, Any] | None, timeout: float) -> tuple[int, str]:
        """(HTTP status, body) of one request; raises ``TimeoutError`` or ``Unreachable``."""
        try:
            with urllib.request.urlopen(self.request(method, path, payload), timeout=timeout) as response:
                return int(response.status), response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", errors="replace")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise TimeoutError(str(exc.reason)) from None
            raise Unreachable(exc) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise Unreachable(exc) from None


def short(body: str, limit: int = 200) -> str:
    """A response body on one line, cut at ``limit`` characters (for error messages)."""
    text = " ".join(body.split())
    return text if len(text) <= limit else text[:limit] + "..."
