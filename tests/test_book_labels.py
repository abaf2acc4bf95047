"""Equation labels: each defined once in the book, and every label the package cites is defined.

The book build finds a duplicate label only after executing every notebook; these checks read the
sources and fail in a second. A package comment such as `# eq-q-sample (Ho et al. 2020, Eq. 4)`
promises the reader an equation of that name in the book.
"""
import collections
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABEL = re.compile(r"\$\$\s*\((eq-[\w-]+)\)")          # $$ ... $$ (eq-name)
CITED = re.compile(r"\beq-[a-z0-9]+(?:-[a-z0-9]+)*")


def book_texts():
    """(file name, markdown text) of every notebook markdown cell and book page."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                yield path.name, "".join(cell["source"])
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()


def defined_labels() -> dict[str, list[str]]:
    where = collections.defaultdict(list)
    for name, text in book_texts():
        for label in LABEL.findall(text):
            where[label].append(name)
    return where


def test_label_pattern_finds_labels():
    assert LABEL.findall("$$\nx = 1\n$$ (eq-a-b)\n") == ["eq-a-b"]
    assert len(defined_labels()) > 50  # the book derives many equations; an empty scan is a broken pattern


def test_every_equation_label_is_defined_once():
    twice = {label: files for label, files in defined_labels().items() if len(files) > 1}
    assert not twice, f"equation labels defined more than once (Sphinx: duplicate label): {twice}"


def test_every_label_cited_by_the_package_is_in_the_book():
    defined = set(defined_labels())
    missing = collections.defaultdict(list)
    for path in sorted((ROOT / "diffusion_lite").rglob("*.py")):
        for label in set(CITED.findall(path.read_text())):
            if label not in defined:
                missing[label].append(str(path.relative_to(ROOT)))
    assert not missing, f"the package cites equation labels the book does not define: {dict(missing)}"
