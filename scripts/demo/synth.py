"""A deterministic synthetic visual-QA generator: coloured shapes, counts, positions, words, forms.

Everything is drawn from small vocabularies so a model of a few hundred thousand parameters can learn
it on a laptop CPU, and everything flows from one ``random.Random(seed)``: the same seed gives the
same questions and byte-identical image files.

An image is described by a frozen, hashable *spec* (``ShapeScene``, ``WordCard``, ``FormPage``) and only
drawn by ``render``; a question is a ``QA``. Specs being values is what makes the train/eval split
checkable: a training question is dropped when any of its images equals an eval image.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_SIZE = 224
GRID = 3

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 200, 30),
    "purple": (135, 60, 185),
    "orange": (245, 135, 25),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
# Row-major over the 3x3 grid; the names people would use.
POSITIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
COUNT_WORDS: tuple[str, ...] = ("1", "2", "3", "4", "5")
BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((255, 255, 255), (236, 236, 236), (250, 244, 228))
INKS: tuple[tuple[int, int, int], ...] = ((20, 20, 20), (30, 40, 110), (110, 25, 25), (25, 80, 40))
WORDS: tuple[str, ...] = ("stop", "taxi", "cafe", "open", "exit", "hotel", "bank", "sale", "park", "bus")
FORM_TITLES: tuple[str, ...] = ("INVOICE", "RECEIPT", "ORDER")
FORM_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Name", ("Ann", "Bob", "Eva", "Max", "Tom", "Zoe")),
    ("City", ("Rome", "Oslo", "Lima", "Kyiv", "Bern", "Riga")),
    ("Total", ("12", "25", "40", "57", "63", "88")),
)

# Word cards: font sizes in px, and the least margin left and right of the word.
WORD_MIN_SIZE, WORD_MAX_SIZE, WORD_MARGIN = 66, 80, 6
# Form template: where the title starts, the field font and the distance between field lines (px).
FORM_TOP, FORM_LEFT, FORM_FONT, FORM_LINE = 8, 10, 36, 54

MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."
YESNO_SUFFIX = " Please answer yes or no."


# ---------------------------------------------------------------- image specs


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    cell: int  # 0..8, row-major in the 3x3 grid
    size: int  # pixels, the shape's bounding box side
    dx: int  # jitter inside the cell
    dy: int


@dataclass(frozen=True)
class ShapeScene:
    shapes: tuple[Shape, ...]
    background: int  # index into BACKGROUNDS


@dataclass(frozen=True)
class WordCard:
    text: str  # exactly as drawn (case included)
    ink: int
    background: int
    font_size: int
    x: int
    y: int


@dataclass(frozen=True)
class FormPage:
    title: str
    values: tuple[str, ...]  # one per FORM_FIELDS entry, in order
    top: int
    left: int


ImageSpec = ShapeScene | WordCard | FormPage


@dataclass(frozen=True)
class QA:
    """One question. ``answer`` is what the model is trained to say; ``references`` what scoring accepts.

    ``parts`` is the prompt in order: an ``int`` is the index of an image in ``images``, a ``str`` a
    piece of text. For MCQ and yes/no, ``question`` is the raw question; the prompt text that wraps it
    (options, suffix) is built by ``prompt_parts`` exactly as the plugin builds it.
    """

    family: str  # vqa | mcq | yesno | textvqa | docvqa
    category: str
    images: tuple[ImageSpec, ...]
    question: str
    answer: str
    references: tuple[str, ...]
    choices: tuple[tuple[str, str], ...] = ()
    hint: str = ""
    parts: tuple[int | str, ...] | None = None  # None: all images first, then the text
    meta: tuple[tuple[str, str], ...] = field(default=(), compare=False)


# ---------------------------------------------------------------- prompts


def mcq_text(question: str, choices: tuple[tuple[str, str], ...], hint: str = "") -> str:
    """The MCQ prompt text: hint, question, one ``X. option`` line each, then the instruction."""
    head = f"{hint}\n{question}" if hint else question
    options = "".join(f"{letter}. {text}\n" for letter, text in choices)
    return f"{head}\n{options}{MCQ_SUFFIX}"


def prompt_parts(qa: QA) -> list[int | str]:
    """The user turn in order (image indices and text) as the plugin will send it."""
    if qa.family == "mcq":
        text = mcq_text(qa.question, qa.choices, qa.hint)
    elif qa.family == "yesno":
        text = qa.question + YESNO_SUFFIX
    else:
        text = qa.question
    if qa.parts is not None:
        return list(qa.parts)
    return [*range(len(qa.images)), text]


def chat_messages(qa: QA) -> list[dict[str, object]]:
    """Chat messages for the processor's template (images as bare ``{"type": "image"}`` parts)."""
    content: list[dict[str, str]] = []
    for part in prompt_parts(qa):
        if isinstance(part, int):
            content.append({"type": "image"})
        else:
            content.append({"type": "text", "text": part})
    return [{"role": "user", "content": content}]


def images_first(qa: QA) -> QA:
    """An interleaved question as the plugin's ``chat`` method sends it: every image, then the texts."""
    if qa.parts is None:
        return qa
    images = tuple(p for p in qa.parts if isinstance(p, int))
    texts = tuple(p for p in qa.parts if isinstance(p, str))
    return replace(qa, parts=images + texts)


# ---------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=64)
def _font(size: int) -> object:
    from PIL import ImageFont

    # Pillow's bundled font: the same glyphs on every machine, no system fonts needed.
    return ImageFont.load_default(size=size)


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw_shape(draw: object, shape: Shape) -> None:
    cell = IMAGE_SIZE / GRID
    row, col = divmod(shape.cell, GRID)
    cx = col * cell + cell / 2 + shape.dx
    cy = row * cell + cell / 2 + shape.dy
    h = shape.size / 2
    fill = COLOURS[shape.colour]
    box = (cx - h, cy - h, cx + h, cy + h)
    if shape.kind == "circle":
        draw.ellipse(box, fill=fill)  # type: ignore[attr-defined]
    elif shape.kind == "square":
        draw.rectangle(box, fill=fill)  # type: ignore[attr-defined]
    elif shape.kind == "triangle":
        draw.polygon([(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)], fill=fill)  # type: ignore[attr-defined]
    elif shape.kind == "star":
        draw.polygon(_star(cx, cy, h * 1.1), fill=fill)  # type: ignore[attr-defined]
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")


def render(spec: ImageSpec) -> Image:
    """Draw an image spec as a 224x224 RGB PIL image (deterministic)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if isinstance(spec, ShapeScene):
        img = PILImage.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[spec.background])
        draw = ImageDraw.Draw(img)
        for shape in spec.shapes:
            _draw_shape(draw, shape)
        return img
    if isinstance(spec, WordCard):
        img = PILImage.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[spec.background])
        draw = ImageDraw.Draw(img)
        draw.text((spec.x, spec.y), spec.text, fill=INKS[spec.ink], font=_font(spec.font_size))
        return img
    if isinstance(spec, FormPage):
        img = PILImage.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        draw.text((spec.left, spec.top), spec.title, fill=(20, 20, 20), font=_font(20))
        draw.line((spec.left, spec.top + 26, IMAGE_SIZE - 12, spec.top + 26), fill=(90, 90, 90), width=2)
        for i, ((key, _), value) in enumerate(zip(FORM_FIELDS, spec.values, strict=True)):
            y = spec.top + 34 + i * FORM_LINE
            draw.text((spec.left, y), f"{key}: {value}", fill=(20, 20, 20), font=_font(FORM_FONT))
        return img
    raise TypeError(f"not an image spec: {spec!r}")


# ---------------------------------------------------------------- random specs


def _shape(
    rng: random.Random, cell: int, kind: str | None = None, colour: str | None = None, big: bool = True
) -> Shape:
    # Large shapes: a tiny model from scratch finds a shape filling most of its cell far sooner.
    return Shape(
        kind=kind or rng.choice(SHAPES),
        colour=colour or rng.choice(list(COLOURS)),
        cell=cell,
        size=rng.randint(58, 68) if big else rng.randint(50, 60),
        dx=rng.randint(-4, 4),
        dy=rng.randint(-4, 4),
    )


def single_scene(rng: random.Random) -> ShapeScene:
    return ShapeScene((_shape(rng, rng.randrange(GRID * GRID)),), rng.randrange(len(BACKGROUNDS)))


def count_scene(rng: random.Random, count: int) -> ShapeScene:
    # One kind per scene: counting should not be confounded with how much area each kind covers.
    kind = rng.choice(SHAPES)
    cells = sorted(rng.sample(range(GRID * GRID), count))
    shapes = tuple(_shape(rng, c, kind=kind, big=False) for c in cells)
    return ShapeScene(shapes, rng.randrange(len(BACKGROUNDS)))


def word_card(rng: random.Random, word: str) -> WordCard:
    """A sign: one word, large and centred (the widest words shrink to fit).

    Large and centred because that is what a model this small can learn to read in minutes: measured,
    a 0.9 M-parameter model trained only on 46-58 px words placed anywhere on the card stayed at chance
    (1/10) for 1,200 steps, also with 62-80 px words placed anywhere, while centred 70-80 px words were
    read at 0.85 after 300 steps.
    """
    text = rng.choice((word, word.upper(), word.capitalize()))
    size = rng.randint(WORD_MIN_SIZE, WORD_MAX_SIZE)
    while _font(size).getlength(text) > IMAGE_SIZE - 2 * WORD_MARGIN:  # type: ignore[attr-defined]
        size -= 2
    width = int(_font(size).getlength(text))  # type: ignore[attr-defined]
    return WordCard(
        text=text,
        ink=rng.randrange(len(INKS)),
        background=rng.randrange(len(BACKGROUNDS)),
        font_size=size,
        x=(IMAGE_SIZE - width) // 2,
        y=(IMAGE_SIZE - size) // 2 - size // 8,  # the glyphs sit low in their line box
    )


def form_page(rng: random.Random) -> FormPage:
    """A filled-in form on a fixed template (title, rule, three large ``Key: value`` lines)."""
    values = tuple(rng.choice(options) for _, options in FORM_FIELDS)
    return FormPage(rng.choice(FORM_TITLES), values, top=FORM_TOP, left=FORM_LEFT)


# ---------------------------------------------------------------- questions


def vqa_single(rng: random.Random, category: str) -> QA:
    if category == "count":
        scene = count_scene(rng, rng.randint(1, len(COUNT_WORDS)))
    else:
        scene = single_scene(rng)
    return vqa_about(scene, category)


def vqa_about(scene: ShapeScene, category: str) -> QA:
    """The open question of ``category`` about a scene (count: any scene; others: its first shape)."""
    if category == "count":
        n = str(len(scene.shapes))
        return QA("vqa", "count", (scene,), "How many shapes are there?", n, (n,))
    s = scene.shapes[0]
    question, answer = {
        "colour": ("What colour is the shape?", s.colour),
        "shape": ("What shape is this?", s.kind),
        "position": ("Where is the shape?", POSITIONS[s.cell]),
    }[category]
    return QA("vqa", category, (scene,), question, answer, (answer,))


def vqa_two_images(rng: random.Random, interleaved: bool) -> QA:
    scenes = (single_scene(rng), single_scene(rng))
    if interleaved:
        which = rng.randrange(2)
        kind = scenes[which].shapes[0].kind
        if scenes[1 - which].shapes[0].kind == kind:  # the answer must be unique
            other = _shape_other_kind(rng, scenes[1].shapes[0], kind)
            scenes = (scenes[0], ShapeScene((other,), scenes[1].background))
            which = 0
        question = f"Which picture shows a {kind}? Answer 1 or 2."
        parts: tuple[int | str, ...] = ("Picture 1:", 0, "Picture 2:", 1, question)
        answer = str(which + 1)
        return QA("vqa", "interleaved", scenes, question, answer, (answer,), parts=parts)
    which = rng.randrange(2)
    ordinal = ("first", "second")[which]
    answer = scenes[which].shapes[0].colour
    question = f"What colour is the shape in the {ordinal} image?"
    return QA("vqa", "multi_image", scenes, question, answer, (answer,))


def _shape_other_kind(rng: random.Random, shape: Shape, not_kind: str) -> Shape:
    kind = rng.choice([k for k in SHAPES if k != not_kind])
    return Shape(kind, shape.colour, shape.cell, shape.size, shape.dx, shape.dy)


VQA_CATEGORIES = ("colour", "shape", "count", "position")


def make_vqa(rng: random.Random) -> QA:
    roll = rng.random()
    if roll < 0.08:
        return vqa_two_images(rng, interleaved=False)
    if roll < 0.16:
        return vqa_two_images(rng, interleaved=True)
    return vqa_single(rng, rng.choice(VQA_CATEGORIES))


MCQ_HINTS = ("", "", "Look at the picture.", "There is at least one shape in the picture.")
LETTERS = "ABCD"


def make_mcq(rng: random.Random) -> QA:
    category = rng.choice(("colour", "shape", "count"))
    if category == "count":
        scene = count_scene(rng, rng.randint(1, len(COUNT_WORDS)))
    else:
        scene = single_scene(rng)
    return mcq_about(rng, scene, category)


def mcq_about(rng: random.Random, scene: ShapeScene, category: str) -> QA:
    """A multiple-choice question of ``category`` (colour, shape, count) about a scene."""
    if category == "count":
        correct, pool, question = str(len(scene.shapes)), COUNT_WORDS, "How many shapes are in the picture?"
        n_options = rng.choice((2, 3, 4))
    else:
        s = scene.shapes[0]
        if category == "colour":
            correct, pool, question = s.colour, tuple(COLOURS), "Which colour is the shape?"
        else:
            correct, pool, question = s.kind, SHAPES, "Which shape is shown?"
        n_options = 4
    distractors = rng.sample([p for p in pool if p != correct], n_options - 1)
    options = [correct, *distractors]
    rng.shuffle(options)
    choices = tuple(zip(LETTERS, options, strict=False))
    answer = LETTERS[options.index(correct)]
    hint = rng.choice(MCQ_HINTS)
    return QA("mcq", category, (scene,), question, answer, (answer,), choices=choices, hint=hint)


def rotate_choices(qa: QA, k: int) -> QA:
    """The same MCQ with its options rotated by ``k`` (MMBench circular evaluation)."""
    texts = [t for _, t in qa.choices]
    rotated = texts[k:] + texts[:k]
    correct = dict(qa.choices)[qa.answer]
    letters = LETTERS[: len(texts)]
    answer = letters[rotated.index(correct)]
    return QA(
        qa.family,
        qa.category,
        qa.images,
        qa.question,
        answer,
        (answer,),
        tuple(zip(letters, rotated, strict=True)),
        qa.hint,
    )


def make_yesno_pair(rng: random.Random) -> tuple[QA, QA]:
    """Two questions about one image, the first answered Yes, the second No (MME style)."""
    category = rng.choice(("colour", "shape", "count", "position"))
    if category == "count":
        scene = count_scene(rng, rng.randint(1, len(COUNT_WORDS)))
    else:
        scene = single_scene(rng)
    return yesno_pair_about(rng, scene, category)


def yesno_pair_about(rng: random.Random, scene: ShapeScene, category: str) -> tuple[QA, QA]:
    """The Yes and the No question of ``category`` (colour, shape, count, position) about a scene."""
    if category == "count":
        n = str(len(scene.shapes))
        wrong = rng.choice([c for c in COUNT_WORDS if c != n])
        template = "Are there {} shapes in the picture?"
        true_q, false_q = template.format(n), template.format(wrong)
    else:
        s = scene.shapes[0]
        if category == "colour":
            template, value, pool = "Is the shape {}?", s.colour, tuple(COLOURS)
        elif category == "shape":
            template, value, pool = "Is there a {} in the picture?", s.kind, SHAPES
        else:
            template, value, pool = "Is the shape at the {}?", POSITIONS[s.cell], POSITIONS
        wrong = rng.choice([p for p in pool if p != value])
        true_q, false_q = template.format(value), template.format(wrong)
    yes = QA("yesno", category, (scene,), true_q, "Yes", ("Yes",))
    no = QA("yesno", category, (scene,), false_q, "No", ("No",))
    return yes, no


TEXTVQA_QUESTIONS = ("what word is written in the image?", "what does the sign say?", "what is written here?")


def _annotator_answers(rng: random.Random, word: str) -> tuple[str, ...]:
    # Real TextVQA answers: ten annotators, mostly agreeing, some casing, the odd typo.
    answers = [word] * 10
    for i in rng.sample(range(10), rng.randint(0, 3)):
        answers[i] = rng.choice((word.upper(), word.capitalize(), word[:-1], word + word[-1]))
    return tuple(answers)


def make_textvqa(rng: random.Random) -> QA:
    card = word_card(rng, rng.choice(WORDS))
    return textvqa_about(rng, card)


def textvqa_about(rng: random.Random, card: WordCard) -> QA:
    """A TextVQA-style question about a word card; the answer is the word in lower case."""
    word = card.text.lower()
    question = rng.choice(TEXTVQA_QUESTIONS)
    return QA("textvqa", "word", (card,), question, word, _annotator_answers(rng, word))


DOC_QUESTIONS = {
    "Name": ("What is the name?", "Whose name is on the form?"),
    "City": ("What is the city?", "Which city is written on the form?"),
    "Total": ("What is the total?", "What is the total amount?"),
}


def make_docvqa(rng: random.Random, page: FormPage | None = None, field_index: int | None = None) -> QA:
    page = page or form_page(rng)
    i = rng.randrange(len(FORM_FIELDS)) if field_index is None else field_index
    key = FORM_FIELDS[i][0]
    value = page.values[i]
    return QA("docvqa", "form", (page,), rng.choice(DOC_QUESTIONS[key]), value, (value,))


# ---------------------------------------------------------------- the train stream

FAMILY_MAKERS: dict[str, Callable[[random.Random], QA]] = {
    "vqa": make_vqa,
    "mcq": make_mcq,
    "yesno": lambda rng: make_yesno_pair(rng)[rng.randrange(2)],
    "textvqa": make_textvqa,
    "docvqa": make_docvqa,
}


def train_stream(
    seed: int,
    weights: dict[str, float],
    exclude_images: frozenset[ImageSpec] = frozenset(),
) -> Iterator[QA]:
    """An endless stream of training questions, mixed by ``weights``, none showing an excluded image."""
    rng = random.Random(seed)
    families = list(weights)
    cumulative = [weights[f] for f in families]
    while True:
        family = rng.choices(families, weights=cumulative)[0]
        qa = FAMILY_MAKERS[family](rng)
        if any(spec in exclude_images for spec in qa.images):
            continue
        if qa.family == "mcq":
            qa = rotate_choices(qa, rng.randrange(len(qa.choices)))
        if qa.parts is not None and rng.random() < 0.5:
            qa = images_first(qa)
        yield qa
