"""The HTML report: self-contained, structured, and every table number taken from the JSON."""

from __future__ import annotations

import argparse
import base64
import copy
import html
import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paramverify.compare import Entry, Settings, run_comparison
from paramverify.errors import SpecError
from paramverify.ir import load_model
from paramverify.properties import labels
from paramverify.report import add_report_subparser, fmt, get_path, paper_finding, rank_models, render_html
from netgen import random_mlp

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Tables (rows of cells with their numbers), numbers anywhere, images and anything external."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self.numbers: list[tuple[str, str, str]] = []  # (data-key, data-fmt, text)
        self.images: list[str] = []
        self.external: list[str] = []
        self.tags: list[str] = []
        self._num: list[str] | None = None
        self._cell: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag in ("script", "link", "iframe", "object"):
            self.external.append(tag)
        for k in ("src", "href"):
            if a.get(k) and not str(a[k]).startswith("data:"):
                self.external.append(str(a[k]))
        if tag == "img":
            self.images.append(str(a.get("src")))
        if tag == "table":
            self.tables.append({"class": a.get("class") or "", "rows": []})
        if tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if tag in ("td", "th") and self.tables:
            self._cell = {"tag": tag, "keys": [], "text": ""}
            self.tables[-1]["rows"][-1].append(self._cell)
        if tag == "span" and "data-key" in a:
            self._num = [str(a["data-key"]), str(a.get("data-fmt")), ""]
            if self._cell is not None:
                self._cell["keys"].append(a["data-key"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._num is not None:
            self.numbers.append((self._num[0], self._num[1], self._num[2]))
            self._num = None
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._num is not None:
            self._num[2] += data
        if self._cell is not None:
            self._cell["text"] += data


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """A real (small) compare result: ReLU and linear random MLPs on 5 inputs."""
    graphs = [load_model(random_mlp(s, [2, 3, 1], a, sigmoid_output=True)) for s, a in ((1, "relu"), (2, "linear"))]
    entries = [Entry(a, g, a, f"{a}.onnx", 0.9) for a, g in zip(("relu", "linear"), graphs)]
    pts = np.random.default_rng(0).uniform(-1, 1, size=(5, 2))
    settings = Settings(deltas=(0.01, 0.03), bits=(8, 4), timeout_s=0.3, tolerance=0.05, map_points=20, grid=10)
    meta = {"data": {"path": "blobs.csv", "features": ["a", "b"], "n_points": 5, "domain": [[-1, 1], [-1, 1]]}}
    return run_comparison(entries, pts, np.array([[-1.0, 1.0], [-1.0, 1.0]]), settings, eval_X=pts,
                          eval_y=labels(graphs[0].evaluate(pts), 0.5), meta=meta)


@pytest.fixture(scope="module")
def rendered(result: dict[str, Any]) -> str:
    return render_html(result)


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("value", "kind", "text"), [
    (0.0123456, "num", "0.01235"), (0.975, "pct", "97.5%"), (3.0, "int", "3"), (1.234, "s", "1.23"),
    ("inf", "num", "\u221e"), ("-inf", "num", "\u2212\u221e"), (None, "num", "\u2014"), (math.inf, "num", "\u221e"),
])
def test_fmt(value: Any, kind: str, text: str) -> None:
    assert fmt(value, kind) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_fmt_keeps_four_significant_digits(x: float) -> None:
    shown = float(fmt(x))
    assert abs(shown - x) <= 5e-4 * abs(x) and (shown == 0) == (x == 0)


# ----------------------------------------------------------------------------- the compare report


def test_every_table_number_is_the_json_value(result: dict[str, Any], rendered: str) -> None:
    page = parse(rendered)
    assert page.numbers, "the report shows no numbers"
    for key, kind, text in page.numbers:
        assert text == fmt(get_path(result, key), kind), key
    summary = next(t for t in page.tables if t["class"] == "summary")
    header, *rows = summary["rows"]
    assert [r[0]["text"] for r in rows] == ["relu", "linear"]
    assert len(header) == 2 + 2 + 2 + 2  # model, accuracy, 2 bit widths, median delta, flippable, 2 deltas
    for r in rows:
        for cell in r[1:]:
            assert cell["keys"], f"summary cell without a JSON number: {cell['text']!r}"
    keys = {k for r in rows for c in r for k in c["keys"]}
    assert {"models.0.accuracy.test", "models.1.max_delta.median.lower", "models.1.max_delta.median.upper",
            "models.0.epsilon_global.1.upper", "models.0.certified.1.fraction", "models.1.map.flippable_fraction.upper"} <= keys


def test_report_is_self_contained_and_has_the_sections(result: dict[str, Any], rendered: str) -> None:
    text = rendered
    page = parse(text)
    assert text.startswith("<!DOCTYPE html>") and page.external == []
    assert len(page.images) >= 4  # epsilon curves, delta curves, certified bars, one map per model
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    for title in ("Summary", "The seed paper", "Decision boundaries", "Per-model details", "Settings"):
        assert title in text
    assert html.escape(result["ranking"]["text"]) in text and html.escape(result["ranking"]["paper_finding"]["text"]) in text


def test_missing_parts_are_reported(result: dict[str, Any]) -> None:
    res = copy.deepcopy(result)
    del res["models"][1]["epsilon_global"]
    res["models"][1].pop("map")
    res["complete"], res["missing"] = False, ["linear: global epsilon at delta 0.01 (interrupted)", "linear: random inputs"]
    res.pop("ranking")
    text = render_html(res)
    page = parse(text)
    summary = next(t for t in page.tables if t["class"] == "summary")
    assert [c["text"] for c in summary["rows"][2][-3:]] == ["missing"] * 3
    assert "Incomplete run" in text and "linear: global epsilon at delta 0.01 (interrupted)" in text
    for key, kind, text in page.numbers:
        assert text == fmt(get_path(res, key), kind)


def test_ranking_and_paper_finding_follow_the_brackets(result: dict[str, Any]) -> None:
    res = copy.deepcopy(result)
    relu, lin = res["models"]
    relu["max_delta"]["median"] = {"lower": 0.3, "upper": 0.31}
    lin["max_delta"]["median"] = {"lower": 0.1, "upper": 0.32}
    r = rank_models(res)
    assert r["order"] == ["relu", "linear"] and r["proved_steps"] == [False] and "\u2265?" in r["text"]
    lin["max_delta"]["median"]["upper"] = 0.2
    assert rank_models(res)["proved_steps"] == [True]
    for m, good in ((relu, True), (lin, False)):  # make ReLU proved better everywhere
        m["max_delta"]["min"] = {"lower": 0.2, "upper": 0.2} if good else {"lower": 0.01, "upper": 0.02}
        for c in m["certified"]:
            c["fraction"], c["fraction_max"] = (1.0, 1.0) if good else (0.2, 0.4)
        m["map"]["flippable_fraction"] = {"lower": 0.0, "upper": 0.01} if good else {"lower": 0.2, "upper": 0.3}
        for e in m["epsilon_global"] + m["sigma"]:
            e["lower"], e["upper"] = (0.01, 0.011) if good else (0.05, 0.06)
    pf = paper_finding(res)
    assert pf is not None and pf["holds"] is True and set(pf["families"].values()) == {"relu"}
    lin["epsilon_global"][0]["upper"] = lin["epsilon_global"][0]["lower"] = 0.001  # linear wins one epsilon
    pf = paper_finding(res)
    assert pf["holds"] is None and pf["families"]["global \u03b5"] == "mixed" and "holds only in part" in pf["text"]


# ----------------------------------------------------------------------------- other results and the command


def _bracket(lo: float, up: float, side: str = "upper") -> dict[str, Any]:
    return {"lower": lo, "upper": up, "gap": up - lo, "time_s": 0.5, "method": "bounds", "proof_side": side, "complete": True}


def test_bound_verify_and_reproduce_results_render(tmp_path: Path) -> None:
    bound = {"command": "bound", "property": "sigma", "model": "m.onnx", "quantity": "sigma", **_bracket(0.1, 0.11),
             "per_class": [dict(_bracket(0.1, 0.11), **{"class": 0}), dict(_bracket(0.05, 0.06), **{"class": 1})],
             "witness": {"input": [1.0, 2.0], "parameters": {"W": [[1.0]]}, "nominal_output": [0.4], "perturbed_output": [0.5]}}
    verify = {"command": "verify", "property": "label", "model": "m.onnx", "verdict": "unknown", "method": "bounds",
              "time_s": 1.5, "reason": "timeout"}
    (tmp_path / "fig.png").write_bytes(PNG + b"rest")
    repro = {"command": "reproduce", "cells": [dict(_bracket(0.02, 0.03), study="cat", delta=0.01, quantity="max_epsilon")],
             "figures": ["elsewhere/fig.png", "nowhere.png"]}
    for res, needle in ((bound, "class 1"), (verify, "UNKNOWN"), (repro, "nowhere.png not found")):
        text = render_html(res, base_dir=str(tmp_path))
        page = parse(text)
        assert needle in text and page.external == []
        for key, kind, text in page.numbers:
            assert text == fmt(get_path(res, key), kind)
    assert "data:image/png;base64," + base64.b64encode(PNG + b"rest").decode() in render_html(repro, base_dir=str(tmp_path))
    assert "timeout" in render_html(verify)


def test_report_command(tmp_path: Path, result: dict[str, Any], rendered: str) -> None:
    parser = argparse.ArgumentParser()
    add_report_subparser(parser.add_subparsers(dest="command"))
    (tmp_path / "r.json").write_text(json.dumps(result))
    args = parser.parse_args(["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.html"), "--quiet"])
    assert args.handler(args) == 0
    assert (tmp_path / "r.html").read_text() == rendered  # deterministic, and the same whoever renders it
    for content, message in (("{", "not valid JSON"), ("[1]", "one JSON object"), ('{"command": "dance"}', "unknown result kind")):
        (tmp_path / "bad.json").write_text(content)
        args = parser.parse_args(["report", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.html")])
        with pytest.raises(SpecError, match=message):
            args.handler(args)
    args = parser.parse_args(["report", str(tmp_path / "absent.json")])
    with pytest.raises(SpecError, match="not found"):
        args.handler(args)
