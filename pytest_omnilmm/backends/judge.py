"""The judge model of judge-graded metrics (``--judge-api-base URL --judge-model NAME``): any
OpenAI-compatible chat-completions server (a GPT model as VLMEvalKit uses, vLLM, ``transformers serve``).

Each ``complete`` is one text-only request the way VLMEvalKit's ``OpenAIWrapper`` sends it (one user
message with one text part, ``n=1``, the temperature and ``max_tokens`` the metric asks for; no system
prompt), and the reply is stripped as that wrapper strips it. 408/429/5xx and timeouts are retried with
the backend's backoff; a judge that cannot be reached, or that refuses the request, raises ``JudgeError``
(one line): the sample fails alone, with its prediction kept in the record. Once the server is found
unreachable, later samples fail at once with the same line instead of waiting on it again.

The key is read from the environment variable ``--judge-api-key-env`` names, never from the command line,
and never printed.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..config import EvalConfig
from ..metrics.judge import JudgeError
from .chat_client import RETRY_STATUSES, ChatClient, Unreachable, backoff_s, short


class OpenAIJudge:
    """A judge behind ``base`` (``.../v1``) serving ``model``."""

    def __init__(
        self, base: str, model: str, *, key_env: str = "", timeout: float = 120.0, retries: int = 3
    ) -> None:
        key = os.environ.get(key_env, "") if key_env else ""
        if key_env and not key:
            raise JudgeError(f"--judge-api-key-env {key_env}: that environment variable is not set")
        self.model = model
        self.client = ChatClient(base, key)
        self.timeout = timeout
        self.retries = retries
        self.calls = 0  # requests answered with a reply (for tests and the curious)
        self._down: str | None = None

    @classmethod
    def from_config(cls, config: EvalConfig) -> OpenAIJudge | None:
        """The run's judge, or None when no ``--judge-model`` is configured."""
        if not config.judge_model:
            return None
        return cls(
            config.judge_api_base,
            config.judge_model,
            key_env=config.judge_api_key_env,
            timeout=config.request_timeout,
            retries=config.retries,
        )

    def complete(self, prompt: str, *, temperature: float, max_tokens: int) -> str:
        if self._down is not None:
            raise JudgeError(self._down)
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
            "n": 1,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        base = self.client.base
        attempts = 1 + max(0, self.retries)
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff_s(attempt))
            try:
                status, body = self.client.call("POST", "/chat/completions", payload, self.timeout)
            except TimeoutError:
                last = f"no answer within --request-timeout {self.timeout:g} s"
                continue
            except Unreachable as exc:
                self._down = (
                    f"judge unreachable at {base} ({exc.reason}); start it or fix --judge-api-base — "
                    "the answer is kept in the record, unscored; rerun to score it"
                )
                raise JudgeError(self._down) from None
            if status == 200:
                self.calls += 1
                return _reply_text(body, base)
            last = f"HTTP {status}: {short(body)}"
            if status not in RETRY_STATUSES:
                raise JudgeError(
                    f"the judge at {base} refused the request (HTTP {status}): {short(body)}; "
                    f"check --judge-model {self.model!r} and --judge-api-base"
                )
        raise JudgeError(f"the judge at {base}/chat/completions failed {attempts} times; last: {last}")


def _reply_text(body: str, base: str) -> str:
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise JudgeError(
            f"the judge at {base} answered HTTP 200 without a chat completion: {short(body)}"
        ) from None
    return str(content or "").strip()
