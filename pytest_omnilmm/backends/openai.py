"""Any OpenAI-compatible server (vLLM, SGLang, LMDeploy, ``transformers serve``): chat completions with
images as base64 data URLs, ``--concurrency`` requests in flight (a thread pool: the work is waiting on
sockets), retries with backoff on 429/5xx/timeouts, a per-request timeout. Standard library only.

The API key is read from the environment variable ``--api-key-env`` names, never from the command line,
and never printed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..config import EvalConfig
from ..generation import order_parts
from ..models import Generated, GenerationSettings, ModelLoadError, ModelRequest
from ..sample import ImageRef, Part, SampleError
from .chat_client import RETRY_STATUSES, ChatClient, Unreachable, backoff_s
from .chat_client import short as _short


class ServerDown(ModelLoadError):
    """The server stopped answering: every later request fails fast with this line."""


@dataclass
class ServerHandle:
    request: ModelRequest
    model: str
    load_time_s: float
    device: str
    dtype: str = "server"
    device_name: str = ""
    replaced_tensors: int | None = None
    total_tensors: int = 0


class OpenAIBackend:
    name = "openai"

    def __init__(self, config: EvalConfig) -> None:
        if not config.api_base:
            raise ModelLoadError(
                "--backend openai needs --api-base, e.g. --api-base http://127.0.0.1:8000/v1"
            )
        if not config.api_model:
            raise ModelLoadError("--backend openai needs --api-model, the model name the server serves")
        self.config = config
        self.base = config.api_base.rstrip("/")
        self.key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if config.api_key_env and not self.key:
            raise ModelLoadError(f"--api-key-env {config.api_key_env}: that environment variable is not set")
        self.client = ChatClient(self.base, self.key)
        self._down: str | None = None
        self._warned = False

    # -- protocol ------------------------------------------------------------------------------
    def load(self, request: ModelRequest) -> ServerHandle:
        if request.ckpt is not None:
            raise ModelLoadError(
                f"--ckpt {request.ckpt}: a server backend cannot apply a checkpoint; serve it instead"
            )
        started = time.perf_counter()
        status, body = self._call("GET", "/models", None, self.config.request_timeout)
        if status != 200:
            raise ModelLoadError(f"{self.base}/models answered HTTP {status}: {_short(body)}")
        served = [str(m.get("id")) for m in json.loads(body).get("data", []) if isinstance(m, dict)]
        if served and self.config.api_model not in served:
            raise ModelLoadError(
                f"--api-model {self.config.api_model}: the server at {self.base} does not serve it; "
                f"it serves {', '.join(served[:5])}"
            )
        return ServerHandle(
            request,
            self.config.api_model,
            time.perf_counter() - started,
            device="server",
            device_name=f"{self.base} ({self.config.api_model})",
        )

    def generate(
        self, handle: ServerHandle, prompts: Sequence[tuple[Part, ...]], settings: GenerationSettings
    ) -> list[Generated]:
        workers = max(1, min(self.config.concurrency, len(prompts)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda parts: self._one(handle, parts, settings), prompts))

    def fingerprint(self, request: ModelRequest) -> str:
        if not self.config.model_revision and not self._warned:
            self._warned = True
            warnings.warn(
                "--backend openai without --model-revision: resume trusts the name "
                f"{self.config.api_model!r}; "
                "give --model-revision (e.g. the served weights' commit) so a changed model is not resumed",
                stacklevel=2,
            )
        return f"openai:{self.config.api_model}@{self.config.model_revision or ''}"

    def settings_identity(self) -> Mapping[str, object]:
        return {"stream": self.config.stream}

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return False  # the server batches; a request it cannot take is that sample's error

    def free_memory(self, device: str) -> None:
        pass

    def peak_memory_mb(self, device: str) -> float:
        return 0.0  # the server's memory is not ours to measure

    def close(self, handle: ServerHandle) -> None:
        pass

    # -- one request ---------------------------------------------------------------------------
    def _one(self, handle: ServerHandle, parts: tuple[Part, ...], settings: GenerationSettings) -> Generated:
        if self._down is not None:
            return Generated(None, error=self._down)
        try:
            content = _content(parts, settings.method)
        except SampleError as exc:
            return Generated(None, error=str(exc))
        payload: dict[str, Any] = {
            "model": handle.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": settings.max_new_tokens,
            "temperature": 0.0,
        }
        if self.config.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        try:
            result = self._with_retries(payload, started)
        except ServerDown as exc:
            self._down = str(exc)
            return Generated(None, error=self._down)
        return result

    def _with_retries(self, payload: dict[str, Any], started: float) -> Generated:
        attempts = 1 + max(0, self.config.retries)
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff_s(attempt))
            try:
                if self.config.stream:
                    return self._stream(payload, started)
                status, body = self._call("POST", "/chat/completions", payload, self.config.request_timeout)
            except TimeoutError:
                last = f"no answer within --request-timeout {self.config.request_timeout:g} s"
                continue
            if status == 200:
                return _parse_completion(json.loads(body))
            last = f"HTTP {status}: {_short(body)}"
            if status not in RETRY_STATUSES:
                return Generated(None, error=_rejection(status, body, payload["model"]))
        return Generated(None, error=f"{self.base}/chat/completions failed {attempts} times; last: {last}")

    def _stream(self, payload: dict[str, Any], started: float) -> Generated:
        request = self._request("POST", "/chat/completions", payload)
        try:
            response = urllib.request.urlopen(request, timeout=self.config.request_timeout)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")
            if exc.code in RETRY_STATUSES:
                raise TimeoutError(f"HTTP {exc.code}") from None
            return Generated(None, error=_rejection(exc.code, body, payload["model"]))
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as exc:
            raise ServerDown(self._down_line(exc)) from None
        texts: list[str] = []
        ttft: float | None = None
        usage: dict[str, Any] = {}
        with response:
            for raw in response:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        texts.append(piece)
        return Generated(
            "".join(texts).strip(),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            generated_tokens=int(usage.get("completion_tokens") or 0),
            ttft_s=ttft,
        )

    # -- transport -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> urllib.request.Request:
        return self.client.request(method, path, payload)

    def _call(
        self, method: str, path: str, payload: dict[str, Any] | None, timeout: float
    ) -> tuple[int, str]:
        try:
            return self.client.call(method, path, payload, timeout)
        except Unreachable as exc:
            raise ServerDown(self._down_line(exc)) from None

    def _down_line(self, exc: BaseException) -> str:
        reason = getattr(exc, "reason", exc)
        return (
            f"server unreachable at {self.base} ({reason}); start it or fix --api-base — "
            "finished samples are kept, rerun to resume"
        )


def _content(parts: tuple[Part, ...], method: str) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in order_parts(parts, method):
        if isinstance(part, ImageRef):
            content.append({"type": "image_url", "image_url": {"url": _data_url(part)}})
        elif part.text:
            content.append({"type": "text", "text": part.text})
    return content


def _data_url(ref: ImageRef) -> str:
    import io

    image = ref.load()
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _parse_completion(body: dict[str, Any]) -> Generated:
    choice = (body.get("choices") or [{}])[0]
    text = ((choice.get("message") or {}).get("content") or "").strip()
    usage = body.get("usage") or {}
    return Generated(
        text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        generated_tokens=int(usage.get("completion_tokens") or 0),
    )


def _rejection(status: int, body: str, model: str) -> str:
    lowered = body.lower()
    if "image" in lowered and status in (400, 415, 422):
        return (
            f"the server rejected this sample's images (HTTP {status}): {_short(body)}; "
            f"does {model} take images?"
        )
    if "model" in lowered and status in (400, 404):
        return f"the server refused model {model!r} (HTTP {status}): {_short(body)}; check --api-model"
    return f"the server refused the request (HTTP {status}): {_short(body)}"
