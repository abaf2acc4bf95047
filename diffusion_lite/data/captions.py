"""Captions for MNIST digits in free words, with phrasings held out for evaluation only (chapter 11).

A caption is a template with slots filled in: {d} names the digit (a word form: "seven", "7",
"no. 7", "7 (seven)"), {n} a noun ("digit", "number", "numeral", "figure") and {s} a style word
("thick", "messy", ...). For example "a {s} {n} {d}" -> "a messy number seven".

The split is deterministic given a seed: whole templates, and some nouns, style words and word forms,
are held out. A model trained on `kind="train"` captions never sees them, so two tests of
generalisation to unseen phrasings are possible:

- "new-template": the held-out templates, filled with training words only;
- "new-words":    the training templates, each caption using at least one held-out word or form.

The plain word and the numeral ("seven", "7") always stay in training: they are what every
caption of a digit shares.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch

from .._checks import check_int

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FORMS = {"word": "{w}", "numeral": "{k}", "abbreviation": "no. {k}", "both": "{k} ({w})"}  # how {d} names k
NOUNS = ("digit", "number", "numeral", "figure")
STYLES = ("handwritten", "thick", "thin", "neat", "messy", "bold", "slanted", "scribbled")
TEMPLATES = (
    "{d}", "a {s} {d}", "the {n} {d}", "{n} {d}, drawn {s}", "a picture of a {d}", "an image of the {n} {d}",
    "a {s} {n} {d}", "please draw a {d}", "write the {n} {d}", "{d}, {s}", "a photo of a {s} {d}",
    "handwriting: {d}", "show me a {d}", "a {d} on a black background", "sketch of the {n} {d}",
    "my favourite {n} is {d}",
)
CAPTION_KINDS = ("train", "new-template", "new-words")
HELD_OUT = {"templates": 4, "nouns": 1, "styles": 2, "forms": 1}  # how many of each the split holds out


@dataclass(frozen=True)
class CaptionSplit:
    """Which templates and words captions for training may use; the rest are for evaluation only."""

    seed: int                      # the seed the split was drawn with
    train_templates: tuple         # templates of training captions
    eval_templates: tuple          # templates held out (kind "new-template")
    train_words: dict              # slot ("forms", "nouns", "styles") -> the words training captions use
    eval_words: dict               # slot -> the words held out (kind "new-words")


def caption_split(seed: int = 0) -> CaptionSplit:
    """Hold out HELD_OUT[...] templates, nouns, style words and word forms, chosen by `seed`."""
    seed = check_int("seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)

    def split(pool, n):
        order = torch.randperm(len(pool), generator=g).tolist()
        return tuple(pool[i] for i in sorted(order[n:])), tuple(pool[i] for i in sorted(order[:n]))

    templates = split(TEMPLATES, HELD_OUT["templates"])
    optional_forms = tuple(f for f in FORMS if f not in ("word", "numeral"))  # word and numeral stay
    forms = split(optional_forms, HELD_OUT["forms"])
    nouns, styles = split(NOUNS, HELD_OUT["nouns"]), split(STYLES, HELD_OUT["styles"])
    return CaptionSplit(seed=seed, train_templates=templates[0], eval_templates=templates[1],
                        train_words={"forms": ("word", "numeral") + forms[0], "nouns": nouns[0], "styles": styles[0]},
                        eval_words={"forms": forms[1], "nouns": nouns[1], "styles": styles[1]})


def fill_caption(template: str, digit: int, form: str, noun: str = "", style: str = "") -> str:
    """One caption: the template's slots filled, with "a" turned into "an" before a vowel sound."""
    check_int("digit", digit, low=0, high=9)
    if form not in FORMS:
        raise ValueError(f"form must be one of {tuple(FORMS)}, got {form!r}")
    d = FORMS[form].format(w=DIGIT_WORDS[digit], k=digit)
    text = template.format(d=d, n=noun, s=style)
    return re.sub(r"\b([Aa]) (?=(?!one\b)[aeiou8])", r"\1n ", text)  # "a eight" -> "an eight"; "a one" stays


def _fillings(template: str, words: dict, require: dict | None = None):
    """(form, noun, style) for every combination the template's slots take from `words`; with
    `require`, only combinations that use at least one of its words."""
    slots = [words["forms"], words["nouns"] if "{n}" in template else ("",),
             words["styles"] if "{s}" in template else ("",)]
    for combo in itertools.product(*slots):
        if require is None or any(w in require[k] for k, w in zip(("forms", "nouns", "styles"), combo)):
            yield combo


def captions_of(digit: int, split: CaptionSplit, kind: str = "train") -> list[str]:
    """Every caption of `digit` of one kind (see CAPTION_KINDS and the module docstring), in a fixed order."""
    check_int("digit", digit, low=0, high=9)
    if not isinstance(split, CaptionSplit):
        raise TypeError(f"split must be a CaptionSplit (from caption_split), got {type(split).__name__}")
    if kind not in CAPTION_KINDS:
        raise ValueError(f"kind must be one of {CAPTION_KINDS}, got {kind!r}")
    if kind == "new-words":
        both = {k: split.train_words[k] + split.eval_words[k] for k in split.train_words}
        pairs = [(t, c) for t in split.train_templates for c in _fillings(t, both, split.eval_words)]
    else:
        templates = split.train_templates if kind == "train" else split.eval_templates
        pairs = [(t, c) for t in templates for c in _fillings(t, split.train_words)]
    return [fill_caption(t, digit, *c) for t, c in pairs]


def sample_captions(labels, split: CaptionSplit, kind: str = "train",
                    generator: torch.Generator | None = None) -> list[str]:
    """One caption per label, drawn uniformly from captions_of(label, split, kind)."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise TypeError(f"labels must be a 1-D integer tensor of digits, got {labels!r:.60}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise ValueError(f"labels must be digits in [0, 9], got values from {int(labels.min())} to {int(labels.max())}")
    pools = {k: captions_of(k, split, kind) for k in sorted(set(labels.tolist()))}
    u = torch.rand(labels.numel(), generator=generator, dtype=torch.float64).tolist()  # one draw per label
    return [pools[y][min(int(p * len(pools[y])), len(pools[y]) - 1)] for y, p in zip(labels.tolist(), u)]
