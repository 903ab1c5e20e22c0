"""How long collecting a 10,000-row VLMEvalKit TSV with embedded images takes, and how many images it decodes.

    python benchmarks/collect_speed.py [--rows 10000] [--image-side 48] [--repeat 3]

The TSV is built in a temporary directory the way MMBench's is: base64 PNGs in the ``image`` column, option
columns A-D, and a quarter of the rows circular copies (index + 1,000,000) whose ``image`` names the
original's index. The images are random noise, which PNG cannot compress, so the file is as large as real
photographs of that size make it. Loading is timed ``--repeat`` times (the slowest run is judged against
the goal), with ``PIL.Image.open`` and ``ImageRef.read_bytes`` counted: collection must touch no image.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GOAL_S = 2.0
CIRCULAR_STRIDE = 1_000_000


def noise_png_b64(side: int, seed: int) -> str:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_tsv(path: Path, rows: int, side: int, distinct: int = 200) -> None:
    images = [noise_png_b64(side, seed) for seed in range(distinct)]
    originals = rows - rows // 4
    header = ["index", "image", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category"]
    labels = ["perception", "colour", "dev"]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow([*header, "split"])
        for i in range(originals):
            hint = "" if i % 3 else "Look closely."
            question = f"Which colour dominates picture {i}?"
            options = ["red", "green", "blue", "grey"]
            writer.writerow([i, images[i % distinct], question, hint, *options, "ABCD"[i % 4], *labels])
        for i in range(rows - originals):  # circular copies: options rotated, image borrowed by index
            question = f"Which colour dominates picture {i}?"
            options = ["green", "blue", "grey", "red"]
            writer.writerow(
                [CIRCULAR_STRIDE + i, str(i), question, "", *options, "ABCD"[(i + 3) % 4], *labels]
            )


@contextmanager
def counting_image_access() -> Iterator[dict[str, int]]:
    """Count every ``PIL.Image.open`` and ``ImageRef.read_bytes`` while the block runs."""
    from PIL import Image

    from pytest_omnilmm.sample import ImageRef

    counts = {"decoded": 0, "read": 0}
    real_open, real_read = Image.open, ImageRef.read_bytes

    def counted_open(*args: object, **kwargs: object) -> object:
        counts["decoded"] += 1
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    def counted_read(self: ImageRef) -> bytes:
        counts["read"] += 1
        return real_read(self)

    Image.open = counted_open  # type: ignore[assignment]
    ImageRef.read_bytes = counted_read  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        Image.open = real_open
        ImageRef.read_bytes = real_read  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--image-side", type=int, default=48, help="pixels per side of each noise PNG")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from pytest_omnilmm.datasets import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "MMBench_synthetic.tsv"
        write_tsv(tsv, args.rows, args.image_side)
        size_mb = tsv.stat().st_size / 1e6
        times = []
        with counting_image_access() as counts:
            for _ in range(args.repeat):
                start = time.perf_counter()
                samples = load_dataset(tsv, name="mmbench_synthetic")
                times.append(time.perf_counter() - start)
    if len(samples) != args.rows:
        print(f"expected {args.rows} samples, got {len(samples)}", file=sys.stderr)
        return 1
    worst = max(times)
    ok = worst < GOAL_S and counts["decoded"] == 0 and counts["read"] == 0
    print(
        f"collect {args.rows} rows ({size_mb:.0f} MB TSV): {statistics.median(times):.2f} s "
        f"(slowest of {args.repeat}: {worst:.2f} s; goal < {GOAL_S:g} s), "
        f"images decoded: {counts['decoded']}, image bytes read: {counts['read']} — {'OK' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
