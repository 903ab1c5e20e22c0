"""Content fingerprints of checkpoints and model directories, with a small on-disk cache of file hashes
so that a re-run does not re-hash gigabytes.

A file's sha256 is cached under its resolved path together with (size, mtime_ns, ctime_ns, inode); any
change of these re-hashes it. A fingerprint of several files is the sha256 of their (name, size, sha256)
lines in name order, so it depends on contents and the names given, never on where the files live.

The cache is a JSON file (``$PYTEST_OMNILMM_CACHE/hashes.json``, else
``${XDG_CACHE_HOME:-~/.cache}/pytest-omnilmm/hashes.json``), read-merged-written atomically so that
parallel workers only ever lose entries, never corrupt the file. A cache that cannot be read or written
is ignored: hashing still works, only slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .formats import CheckpointError, CheckpointSpec, _listdir, inspect_checkpoint

CHUNK_SIZE = 1 << 20
CACHE_ENV = "PYTEST_OMNILMM_CACHE"
CACHE_FILE_NAME = "hashes.json"
_CACHE_VERSION = 1
_MAX_ENTRIES = 4096
# A file modified this recently may still change within the same mtime tick (coarse filesystem clocks):
# hash it, but do not cache the hash (git's "racily clean" rule).
_RACY_SECONDS = 2.0


def default_cache_path() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser() / CACHE_FILE_NAME
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "pytest-omnilmm" / CACHE_FILE_NAME


def iter_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The file's bytes in CHUNK_SIZE pieces (a seam tests use to count real reads)."""
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter_chunks(stream):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(st: os.stat_result) -> dict[str, int]:
    # ctime too: `cp -p` over a file, or `touch -d` after a rewrite, keeps size, mtime and inode, but no
    # user can set ctime, so an in-place rewrite is always seen.
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


class HashCache:
    """sha256 per file, remembered by (resolved path, size, mtime_ns, ctime_ns, inode)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_cache_path()
        self._entries: dict[str, dict[str, Any]] = self._read()
        self._dirty: dict[str, dict[str, Any]] = {}

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            return {}
        entries = data.get("entries")
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, dict)}

    def sha256(self, path: Path) -> str:
        resolved = Path(path).resolve()
        st = resolved.stat()
        key = str(resolved)
        stamp = _stat_key(st)
        entry = self._entries.get(key)
        if entry is not None and all(entry.get(k) == v for k, v in stamp.items()):
            digest = entry.get("sha256")
            if isinstance(digest, str) and len(digest) == 64:
                return digest
        digest = sha256_file(resolved)
        # Re-stat: a file rewritten while we read it must not be cached under the old stamp.
        if _stat_key(resolved.stat()) == stamp and time.time() - st.st_mtime > _RACY_SECONDS:
            new = {**stamp, "sha256": digest, "used": time.time()}
            self._entries[key] = new
            self._dirty[key] = new
        return digest

    def save(self) -> None:
        """Merge our new entries into the file on disk; silently give up when it cannot be written."""
        if not self._dirty:
            return
        merged = self._read()
        merged.update(self._dirty)
        if len(merged) > _MAX_ENTRIES:
            newest = sorted(merged.items(), key=lambda kv: kv[1].get("used", 0), reverse=True)
            merged = dict(newest[:_MAX_ENTRIES])
        payload = json.dumps({"version": _CACHE_VERSION, "entries": merged}, sort_keys=True)
        tmp_name: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".hashes-", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(payload)
            os.replace(tmp_name, self.path)
            tmp_name = None
            self._dirty.clear()
        except OSError:
            pass
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass


def fingerprint_files(named_files: Iterable[tuple[str, Path]], cache_path: Path | None = None) -> str:
    """sha256 over (name, size, sha256 of bytes) of each file, in name order."""
    cache = HashCache(cache_path)
    lines: list[str] = []
    try:
        for name, path in sorted(named_files, key=lambda item: item[0]):
            size = Path(path).stat().st_size
            lines.append(f"{name}\0{size}\0{cache.sha256(Path(path))}\n")
    finally:
        cache.save()
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _name_for(spec: CheckpointSpec, f: Path) -> str:
    # A single file is named by its format only, so renaming or moving it keeps the fingerprint.
    if spec.kind in ("safetensors", "torch"):
        return f"weights{f.suffix.lower()}"
    return f.relative_to(spec.path).as_posix()


def fingerprint(spec_or_path: CheckpointSpec | str | Path, *, cache_path: Path | None = None) -> str:
    """sha256 (hex) of the checkpoint's weight files (and index/config files that shape how they load)."""
    spec = spec_or_path if isinstance(spec_or_path, CheckpointSpec) else inspect_checkpoint(spec_or_path)
    files = [(_name_for(spec, f), f) for f in (*spec.weight_files, *spec.extra_files)]
    try:
        return fingerprint_files(files, cache_path)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {spec.path} could not be read for hashing ({exc}); check the path"
        ) from None


# Files of a base model directory that decide its outputs: weights, configs, tokenizer, processor,
# chat templates, and remote code.
_MODEL_DIR_PATTERNS = (
    re.compile(r".*\.safetensors$"),
    re.compile(r"^pytorch_model.*\.bin$"),
    re.compile(r".*\.index\.json$"),
    re.compile(
        r"^(config|generation_config|preprocessor_config|processor_config|video_preprocessor_config)\.json$"
    ),
    re.compile(r"^(tokenizer.*|special_tokens_map\.json|added_tokens\.json|vocab\..*|merges\.txt)$"),
    re.compile(r".*\.(model|tiktoken|jinja|py)$"),
    re.compile(r"^chat_template\.json$"),
)


def fingerprint_model_dir(path: str | Path, *, cache_path: Path | None = None) -> str:
    """sha256 (hex) of a base model directory: weights, configs, tokenizer/processor, chat templates."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise CheckpointError(f"model path {d} is not a directory; give --model_path a local model directory")
    files: list[tuple[str, Path]] = []
    # Top level only (plus chat templates kept in a subfolder): training output folders nest whole
    # checkpoints below the model, which are not part of it.
    for sub in (d, d / "additional_chat_templates"):
        if not sub.is_dir():
            continue
        for n in _listdir(sub, "model directory"):
            f = sub / n
            if f.is_file() and any(pat.match(n) for pat in _MODEL_DIR_PATTERNS):
                files.append((f.relative_to(d).as_posix(), f))
    if not files:
        raise CheckpointError(
            f"model directory {d} has no weights, config or tokenizer files; check --model_path"
        )
    try:
        return fingerprint_files(files, cache_path)
    except OSError as exc:
        raise CheckpointError(
            f"model directory {d} could not be read for hashing ({exc}); check it"
        ) from None
