"""The unit of evaluation: one question with its images, references and choices.

Samples are cheap to build: an image is only a *reference* (a file path or a base64 payload) until
generation asks for pixels, so collecting 10,000 samples decodes no image at all.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image


class SampleError(Exception):
    """A problem with one sample's data (missing image, bad base64, ...): only that sample fails."""


@dataclass(frozen=True)
class Text:
    """A piece of the prompt's text."""

    text: str


@dataclass(frozen=True)
class ImageRef:
    """An image that is opened only when asked: a file on disk or a base64 payload.

    ``origin`` says where it came from (``file.tsv row 12``) so errors can point at it.
    """

    path: Path | None = None
    b64: str | None = None
    origin: str = ""
    # Set for a row whose data could not be read (a dangling image reference, a malformed line): the
    # sample exists, so its item runs and fails alone with this line, and every other row is evaluated.
    problem: str | None = None

    def __post_init__(self) -> None:
        if self.problem is None and (self.path is None) == (self.b64 is None):
            raise ValueError("ImageRef needs exactly one of path or b64")

    def read_bytes(self) -> bytes:
        if self.problem is not None:
            raise SampleError(self.problem)
        if self.path is not None:
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise SampleError(
                    f"cannot read image {self.path} ({self.origin or 'no origin'}): {exc.strerror or exc}"
                ) from None
        assert self.b64 is not None
        try:
            return base64.b64decode(self.b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SampleError(f"image is not valid base64 ({self.origin}): {exc}") from None

    def content_hash(self) -> str:
        """sha256 of the image bytes (what the resume cache keys on and the gate clusters on)."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        # Read and hashed once per process: the resume key and the record's image hash both ask.
        return hashlib.sha256(self.read_bytes()).hexdigest()

    def load(self) -> Image:
        """Decode to an RGB PIL image, fully, so a truncated file fails here and not later."""
        import io
        import re

        from PIL import Image as PILImage

        data = self.read_bytes()
        where = str(self.path) if self.path is not None else self.origin
        limit = PILImage.MAX_IMAGE_PIXELS
        try:
            with PILImage.open(io.BytesIO(data)) as img:
                # PIL itself only warns below twice its limit; the limit the user set is the limit.
                if limit is not None and img.width * img.height > limit:
                    raise PILImage.DecompressionBombError(f"{img.width * img.height} pixels")
                img.load()
                return img.convert("RGB")
        except PILImage.DecompressionBombError as exc:
            found = re.search(r"\d+ pixels", str(exc))
            size = found.group(0) if found else "too many pixels"
            raise SampleError(
                f"image {where} has {size}, over the limit of {limit} (a decompression-bomb guard); "
                "raise it with --max-image-pixels if you trust the file"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise SampleError(f"image {where} cannot be decoded: {exc}") from None


Part = Text | ImageRef


@dataclass(frozen=True)
class Sample:
    """One evaluation sample.

    ``parts`` keeps text and images in the order the dataset gives them (what ``interleave`` uses);
    ``chat`` puts all images first. ``choices`` are ``(letter, text)`` pairs for multiple choice.
    ``group`` ties samples that share an image (MME pairs, MMBench circular copies): the bootstrap and
    the gate resample groups, not samples.
    """

    id: str
    dataset: str
    parts: tuple[Part, ...]
    references: tuple[str, ...] = ()
    choices: tuple[tuple[str, str], ...] = ()
    category: str | None = None
    split: str | None = None
    group: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> tuple[ImageRef, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImageRef))

    @property
    def text(self) -> str:
        """All text parts joined by newlines (the question as a human reads it)."""
        return "\n".join(p.text for p in self.parts if isinstance(p, Text))

    def image_hash(self) -> str | None:
        """sha256 over the content hashes of the sample's images (None without images): questions that
        ask about the same picture get the same value, wherever the file lives or however it is encoded."""
        images = self.images
        if not images:
            return None
        h = hashlib.sha256()
        for image in images:
            h.update(image.content_hash().encode() + b"\0")
        return h.hexdigest()

    def content_hash(self) -> str:
        """sha256 over the sample's text, image bytes, references and choices (part of the resume key)."""
        h = hashlib.sha256()
        h.update(self.id.encode())
        for part in self.parts:
            if isinstance(part, Text):
                h.update(b"T\0" + part.text.encode() + b"\0")
            else:
                h.update(b"I\0" + part.content_hash().encode() + b"\0")
        for ref in self.references:
            h.update(b"R\0" + ref.encode() + b"\0")
        for letter, text in self.choices:
            h.update(b"C\0" + letter.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()
