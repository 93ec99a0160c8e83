"""docs/fidelity.md, the fidelity ledger, is kept true by this test.

The ledger has a table per paper; every row names a verdict, and the tests it
cites must exist (file and ``def test_name``; a parametrised id ``[...]`` is
allowed). Recipe values it quotes as `` `RECIPE: key.sub = VALUE` `` are
checked against the recipes, so the ledger cannot silently drift from them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from asclab.config import list_recipes, load_recipe

REPO = Path(__file__).resolve().parents[1]
LEDGER = REPO / "docs" / "fidelity.md"
PAPERS = ("McDonnell & Gao 2019", "Gao & McDonnell 2020", "QTI 2020", "Horvath et al. 2021", "Gao & Lee 2024")
VERDICTS = ("faithful", "choice", "deviation")
COLUMNS = ["item", "paper", "asclab", "verdict", "pinned by"]
TEST_REF = re.compile(r"(tests/(?:\w+/)?test_\w+\.py)::(test_\w+)(\[[^\]`|]*\])?")
RECIPE_VALUE = re.compile(r"`([a-z0-9_]+): ([A-Za-z0-9_.]+) = ([^`]+)`")


def _text() -> str:
    assert LEDGER.is_file(), f"{LEDGER} is missing"
    return LEDGER.read_text(encoding="utf-8")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables() -> dict[str, list[list[str]]]:
    """Paper section heading -> rows (cells) of the first table under it."""
    out: dict[str, list[list[str]]] = {}
    section = None
    for line in _text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if section is None or not line.lstrip().startswith("|"):
            continue
        cells = _cells(line)
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        out.setdefault(section, []).append(cells)
    return out


def _paper_tables() -> dict[str, list[list[str]]]:
    tables = _tables()
    found = {}
    for paper in PAPERS:
        heads = [h for h in tables if h.startswith(paper)]
        assert len(heads) == 1, f"the ledger needs one section starting '## {paper}', found {heads}"
        found[paper] = tables[heads[0]]
    return found


def test_the_ledger_has_a_table_per_paper_with_a_verdict_in_every_row():
    for paper, rows in _paper_tables().items():
        header, body = rows[0], rows[1:]
        assert [h.lower() for h in header] == COLUMNS, paper
        assert len(body) >= 10, f"{paper}: only {len(body)} items"
        for row in body:
            assert len(row) == len(COLUMNS), f"{paper}: row {row[0]!r} has {len(row)} cells"
            verdict = row[3].lower()
            assert verdict.startswith(VERDICTS), f"{paper}: row {row[0]!r}: verdict {row[3]!r}"
            if verdict.startswith(("choice", "deviation")):
                assert len(row[3]) > len("deviation") + 5, f"{paper}: row {row[0]!r} says no why"
            assert row[4], f"{paper}: row {row[0]!r} names no test (write 'none: reason')"


def test_every_test_the_ledger_names_exists():
    refs = TEST_REF.findall(_text())
    assert len(refs) >= 50
    missing = []
    for path, name, _param in set(refs):
        file = REPO / path
        if not file.is_file() or not re.search(rf"^(async )?def {name}\(", file.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"the ledger names tests that do not exist: {sorted(missing)}"


def _lookup(recipe: dict, key: str):
    node = recipe
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and part.isdigit() and int(part) in node:
            node = node[int(part)]
        else:
            raise KeyError(key)
    return node


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_recipe_values_the_ledger_quotes_are_the_recipes():
    quoted = RECIPE_VALUE.findall(_text())
    assert len(quoted) >= 40
    known = set(list_recipes())
    recipes: dict[str, dict] = {}
    wrong = []
    for name, key, text in quoted:
        assert name in known, f"the ledger quotes an unknown recipe {name!r}"
        expected = yaml.safe_load(text)
        if name not in recipes:
            recipes[name] = load_recipe(name)
        try:
            actual = _lookup(recipes[name], key)
        except (KeyError, IndexError, ValueError):
            wrong.append(f"{name}: {key} is not set (ledger: {text})")
            continue
        if not _same(actual, expected):
            wrong.append(f"{name}: {key} = {actual!r} (ledger: {text})")
    assert not wrong, "ledger and recipes disagree:\n" + "\n".join(wrong)


@pytest.mark.parametrize("bad", ["`quickstart: optim.lr = 0.5`", "`quickstart: optim.no_such = 1`"])
def test_the_value_check_can_fail(bad):
    name, key, text = RECIPE_VALUE.findall(bad)[0]
    recipe = load_recipe(name)
    try:
        assert not _same(_lookup(recipe, key), yaml.safe_load(text))
    except KeyError:
        pass
