"""Write the bundled catalogue samples: small synthetic VLMEvalKit TSVs under evals/data/vlmeval/.

Images are drawn here with PIL (coloured shapes and a word), questions are made up; nothing is copied
from a released file. Each TSV uses the columns of the released file it stands in for. Deterministic:
rerunning rewrites byte-identical files. Run: ``python scripts/make_catalogue_samples.py``.
"""

from __future__ import annotations

import base64
import csv
import io
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "evals" / "data" / "vlmeval"
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
WORDS = ("CAT", "SUN", "MAP", "BOX", "PEN", "KEY")


def image(colour: str, shape: str, word: str = "") -> str:
    """A 64 px PNG as base64: one shape in one colour, an optional word under it."""
    img = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(img)
    box = (14, 6, 50, 42)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(32, 6), (50, 42), (14, 42)], fill=fill)
    if word:
        draw.text((20, 48), word, fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def write(name: str, header: Sequence[str], rows: Sequence[dict[str, str]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{name}.tsv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow([row.get(c, "") for c in header])


def _colour_mcq(rng: random.Random, i: int) -> tuple[str, str, list[str], str]:
    colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    options = rng.sample(list(COLOURS), 4)
    if colour not in options:
        options[rng.randrange(4)] = colour
    return image(colour, shape), f"What colour is the {shape}?", options, "ABCD"[options.index(colour)]


def mcq(name: str, header: Sequence[str], n: int, seed: int, extra: dict[str, Sequence[str]]) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        img, question, options, answer = _colour_mcq(rng, i)
        row = {"index": str(i), "image": img, "question": question, "answer": answer}
        row.update(zip("ABCD", options, strict=True))
        for column, values in extra.items():
            row[column] = values[i % len(values)]
        rows.append(row)
    write(name, header, rows)


def mmbench_v11(name: str, seed: int, cn: bool) -> None:
    """Base questions plus circular copies at index + k * 1e6 whose image refers back to the base row."""
    rng = random.Random(seed)
    header = [
        "index",
        "question",
        "hint",
        "A",
        "B",
        "C",
        "D",
        "answer",
        "category",
        "image",
        "source",
        "l2-category",
        "comment",
        "split",
    ]
    rows = []
    for i in range(4):
        img, question, options, answer = _colour_mcq(rng, i)
        if cn:
            question = "图中形状是什么颜色？"
        for k in range(3):
            rotated = options[k:] + options[:k]
            row = {
                "index": str(i + k * 1_000_000),
                "question": question,
                "hint": "nan",
                "answer": "ABCD"[rotated.index(options["ABCD".index(answer)])],
                "category": ("attribute_recognition", "object_localization")[i % 2],
                "image": img if k == 0 else str(i),
                "source": "synthetic",
                "l2-category": "attribute_reasoning",
                "comment": "nan",
                "split": "dev",
            }
            row.update(zip("ABCD", rotated, strict=True))
            rows.append(row)
    write(name, header, rows)


def mmmu() -> None:
    """Multiple choice with one or two images placed at <image k>, and open questions (no options)."""
    rng = random.Random(7)
    header = [
        "index",
        "question",
        "A",
        "B",
        "C",
        "D",
        "answer",
        "category",
        "image",
        "image_path",
        "split",
        "question_type",
        "id",
    ]
    rows = []
    for i in range(12):
        colour, other = rng.sample(list(COLOURS), 2)
        shape = rng.choice(SHAPES)
        row = {
            "index": str(i),
            "category": ("Art", "Math", "Physics")[i % 3],
            "split": "validation",
            "id": f"validation_syn_{i}",
        }
        if i % 3 == 2:  # open question: option cells empty, the answer is the text itself
            row.update(
                image=image(colour, shape),
                image_path=f"{i}.png",
                question_type="open",
                question=f"<image 1> Name the colour of the {shape}.",
                answer=colour,
            )
        elif i % 3 == 1:  # two images, both named in the question
            row.update(
                image=str([image(colour, shape), image(other, shape)]),
                image_path=str([f"{i}_1.png", f"{i}_2.png"]),
                question_type="multiple-choice",
                question="Which colour is in <image 1> but not in <image 2>?",
                answer="A",
                A=colour,
                B=other,
                C="black",
                D="white",
            )
        else:
            options = rng.sample(list(COLOURS), 4)
            if colour not in options:
                options[0] = colour
            row.update(
                image=image(colour, shape),
                image_path=f"{i}.png",
                question_type="multiple-choice",
                question=f"<image 1> What colour is the {shape}?",
                answer="ABCD"[options.index(colour)],
                **dict(zip("ABCD", options, strict=True)),
            )
        rows.append(row)
    write("MMMU_DEV_VAL", header, rows)


def pope() -> None:
    rng = random.Random(11)
    rows = []
    for i in range(12):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        asked = shape if i % 2 == 0 else rng.choice([s for s in SHAPES if s != shape])
        rows.append(
            {
                "index": str(i),
                "image": image(colour, shape),
                "question": f"Is there a {asked} in the image?",
                "answer": "Yes" if asked == shape else "No",
                "category": ("adversarial", "popular", "random")[i % 3],
            }
        )
    write("POPE", ["index", "image", "question", "answer", "category"], rows)


def hallusion() -> None:
    """Index <category>_<subcategory>_<n>_<set>_<figure>_<question>: two figures per set, two questions."""
    rng = random.Random(13)
    rows = []
    for s in range(3):
        category, l2 = ("VS", "chart") if s % 2 else ("VD", "illusion")
        shape = rng.choice(SHAPES)
        for fig in range(2):
            colour = rng.choice(list(COLOURS))
            for q in range(2):
                asked = colour if q == 0 else rng.choice([c for c in COLOURS if c != colour])
                rows.append(
                    {
                        "index": f"{category}_{l2}_0_{s}_{fig}_{q}",
                        "image": image(colour, shape),
                        "question": f"Is the {shape} {asked}?",
                        "answer": "Yes" if q == 0 else "No",
                        "category": category,
                        "l2-category": l2,
                    }
                )
    write("HallusionBench", ["index", "image", "question", "answer", "category", "l2-category"], rows)


def vqa(name: str, header: Sequence[str], seed: int, many: bool, extra: dict[str, Sequence[str]]) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(12):
        colour, shape, word = rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(WORDS)
        if i % 2:
            question, answer = "What word is written in the image?", word.lower()
        else:
            question, answer = f"What colour is the {shape}?", colour
        row = {
            "index": str(i),
            "image": image(colour, shape, word),
            "question": question,
            "answer": str([answer, answer.upper()]) if many else answer,
        }
        for column, values in extra.items():
            row[column] = values[i % len(values)]
        rows.append(row)
    write(name, header, rows)


def mathvista() -> None:
    """Multiple choice (choices list + answer_option), integer and text answers."""
    rng = random.Random(25)
    header = [
        "index",
        "image",
        "question",
        "answer",
        "question_type",
        "answer_type",
        "choices",
        "answer_option",
        "unit",
        "precision",
        "task",
        "skills",
    ]
    rows = []
    for i in range(12):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        row = {
            "index": str(i),
            "image": image(colour, shape),
            "unit": "",
            "precision": "",
            "task": ("figure question answering", "math word problem")[i % 2],
            "skills": str(["arithmetic reasoning"]),
        }
        if i % 3 == 0:
            options = rng.sample(list(COLOURS), 4)
            if colour not in options:
                options[0] = colour
            row.update(
                question=f"What colour is the {shape}?",
                answer=colour,
                question_type="multi_choice",
                answer_type="text",
                choices=str(options),
                answer_option="ABCD"[options.index(colour)],
            )
        elif i % 3 == 1:
            row.update(
                question="How many shapes are there?",
                answer="1",
                question_type="free_form",
                answer_type="integer",
                choices="nan",
                answer_option="nan",
            )
        else:
            row.update(
                question="What shape is drawn?",
                answer=shape,
                question_type="free_form",
                answer_type="text",
                choices="nan",
                answer_option="nan",
            )
        rows.append(row)
    write("MathVista_MINI", header, rows)


def main() -> None:
    mcq(
        "MMStar",
        ["index", "question", "answer", "category", "l2_category", "A", "B", "C", "D", "image"],
        12,
        1,
        {"category": ["coarse perception", "fine-grained perception"], "l2_category": ["color"]},
    )
    mcq(
        "AI2D_TEST",
        ["index", "question", "A", "B", "C", "D", "answer", "image", "category"],
        12,
        2,
        {"category": ["diagram"]},
    )
    mcq(
        "ScienceQA_TEST",
        ["index", "question", "hint", "A", "B", "C", "D", "answer", "image", "category", "split"],
        12,
        3,
        {"hint": ["nan", "Look at the shape."], "category": ["colors"], "split": ["test"]},
    )
    mcq("RealWorldQA", ["index", "image", "question", "A", "B", "C", "D", "answer"], 12, 4, {})
    mcq(
        "SEEDBench_IMG",
        ["index", "question", "A", "B", "C", "D", "answer", "category", "image"],
        12,
        5,
        {"category": ["Instance Attributes", "Scene Understanding"]},
    )
    mmbench_v11("MMBench_DEV_EN_V11", 6, cn=False)
    mmbench_v11("MMBench_DEV_CN_V11", 8, cn=True)
    mmmu()
    pope()
    hallusion()
    vqa("InfoVQA_VAL", ["index", "image", "question", "answer"], 21, True, {})
    vqa(
        "ChartQA_TEST",
        ["index", "image", "question", "answer", "category"],
        22,
        False,
        {"category": ["human", "augmented"]},
    )
    vqa("TextVQA_VAL", ["index", "image", "question", "answer"], 23, True, {})
    vqa("DocVQA_VAL", ["index", "image", "question", "answer"], 24, True, {})
    mathvista()
    vqa(
        "MMVet", ["index", "image", "question", "answer", "category"], 26, False, {"category": ["rec", "ocr"]}
    )


if __name__ == "__main__":
    main()
