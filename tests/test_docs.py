"""The documentation matches the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen(name: str = "gen_cli"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    expected = _gen().render()
    actual = (ROOT / "docs" / "cli.md").read_text()
    assert actual == expected, "docs/cli.md is stale: run `COLUMNS=100 python docs/gen_cli.py`"


def test_benchmarks_page_is_current():
    expected = _gen("gen_benchmarks").render()
    actual = (ROOT / "docs" / "benchmarks.md").read_text()
    assert actual == expected, "docs/benchmarks.md is stale: run `python docs/gen_benchmarks.py`"


#: ALL_CAPS words with an underscore that may appear on the benchmarks page (real identifiers)
ALLOWED_CAPS = {"RUSAGE_SELF"}


def test_benchmarks_page_has_no_placeholders():
    text = _gen("gen_benchmarks").render()
    leftovers = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", text)) - ALLOWED_CAPS
    assert not leftovers, f"docs/benchmarks.md has placeholder tokens: {sorted(leftovers)}"


def test_every_flag_has_help():
    from paramverify.cli import build_parser

    gen = _gen()
    parser = build_parser()
    stack = [("paramverify", parser)]
    while stack:
        name, p = stack.pop()
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help text"
        stack.extend((f"{name} {n}", s) for n, s in gen._subparsers(p))


def test_readme_opens_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert block == [
        "python3 -m pip install -q -c constraints.txt -e . && paramverify reproduce",
        'python3 -m pip install -q -c constraints.txt -e ".[test]" && python3 -m pytest',
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_doc_links_resolve(doc):
    text = (ROOT / "docs" / doc).read_text()
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (ROOT / "docs" / target).exists() or (ROOT / target).exists(), f"{doc} links to missing {target}"
