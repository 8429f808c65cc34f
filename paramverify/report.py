"""Self-contained HTML reports rendered from a JSON result, and ``paramverify report``.

:func:`render_html` turns the JSON object of ``compare``, ``bound``,
``verify`` or ``reproduce`` into one HTML page: inline CSS, no scripts, every
image a base64 PNG data URI, so the file opens offline and can be mailed.
The page is a pure function of the JSON (one source of truth): every number
in a table is the JSON value at the path in its ``data-key`` attribute,
printed by :func:`fmt` with the format named in ``data-fmt``.

Nothing here proves anything; it shows what the JSON says, including which
end of each bracket is proved and which queries are missing or incomplete.
"""

from __future__ import annotations

import argparse
import html
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from paramverify.errors import SpecError
from paramverify.fileio import check_output_path, write_text
from paramverify.report_figures import (
    file_uri,
    fmt,
    num,
    plot_bracket_rows,
    plot_certified_bars,
    plot_delta_curves,
    plot_epsilon_curves,
    plot_map,
    shared_norm,
)


def get_path(obj: Any, path: str) -> Any:
    """Resolve a dotted path such as ``models.0.sigma.1.upper`` in a JSON object."""
    for part in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(part)]
        else:
            obj = obj[part]
    return obj


def _has(obj: Any, path: str) -> bool:
    try:
        get_path(obj, path)
    except (KeyError, IndexError, ValueError, TypeError):
        return False
    return True


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


class _Page:
    """Collects HTML for one result; every table number goes through :meth:`n`."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.parts: list[str] = []

    def n(self, path: str, kind: str = "num") -> str:
        if not _has(self.result, path):
            return '<span class="missing">missing</span>'
        value = get_path(self.result, path)
        return f'<span class="n" data-key="{_esc(path)}" data-fmt="{kind}">{_esc(fmt(value, kind))}</span>'

    def bracket(self, path: str, side: str | None = None, kind: str = "num", keys: tuple[str, str] = ("lower", "upper")) -> str:
        """The bracket at ``path``: the proved end first (bold, with its inequality), the witness end below."""
        pre = f"{path}." if path else ""
        if not (_has(self.result, pre + keys[0]) and _has(self.result, pre + keys[1])):
            return '<span class="missing">missing</span>'
        b = get_path(self.result, path) if path else self.result
        side = side or b.get("proof_side")
        lo, up = self.n(pre + keys[0], kind), self.n(pre + keys[1], kind)
        if side == "upper":
            main, other = f"\u2264 {up}", f"\u2265 {lo}"
        elif side == "lower":
            main, other = f"\u2265 {lo}", f"\u2264 {up}"
        else:
            main, other = f"[{lo}, {up}]", ""
        warn = "" if b.get("complete", True) else '<br><span class="warn" title="stopped before the tolerance; still valid">incomplete</span>'
        return f'<span class="pr" title="proved">{main}</span><br><span class="wi" title="witness">{other}</span>{warn}'

    def add(self, text: str) -> None:
        self.parts.append(text)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", text_cols: int | Sequence[int] = 1) -> None:
        """A table; text columns (the first ``text_cols``, or those listed) are left-aligned, the rest are numbers."""
        def cell(tag: str, j: int, c: str) -> str:
            text = j < text_cols if isinstance(text_cols, int) else j in text_cols
            return f'<{tag} class="{"t" if text else "v"}">{c}</{tag}>'
        head = "".join(cell("th", j, h) for j, h in enumerate(header))
        body = "".join("<tr>" + "".join(cell("td", j, c) for j, c in enumerate(row)) + "</tr>" for row in rows)
        self.add(f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')

    def images(self, items: Sequence[tuple[str | None, str]]) -> None:
        """Figures side by side (wrapping); ``None`` URIs are skipped."""
        figs = "".join(f'<figure><img src="{u}" alt="{_esc(a)}"><figcaption>{_esc(a)}</figcaption></figure>' for u, a in items if u)
        if figs:
            self.add(f'<div class="row">{figs}</div>')


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1250px;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .55em;
vertical-align:top}th{background:#f2f4f7}.v{text-align:right;white-space:nowrap}.t{text-align:left}
.pr{font-weight:600}.wi{color:#777;font-size:.82em}.row{display:flex;flex-wrap:wrap;gap:.4em}
.conclusion{font-size:1.12em;background:#eef6ee;border-left:5px solid #2ca02c;padding:.6em 1em}
.banner{background:#fff3cd;border-left:5px solid #e0a800;padding:.6em 1em}
.missing{color:#b00;font-style:italic}.warn{color:#b06000;font-size:.85em}.sub{color:#666;font-size:.85em}
figure{margin:.3em}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:620px}.meta td{text-align:left}
.verdict-verified{color:#1a7f37;font-weight:bold}.verdict-falsified{color:#b00;font-weight:bold}
.verdict-unknown{color:#b06000;font-weight:bold}summary{cursor:pointer;color:#555;margin:.4em 0}
"""


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


# ----------------------------------------------------------------------------- images


def criteria(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Every robustness measure of one compare model as a bracket with its direction.

    Each entry: ``name``, ``lower``, ``upper`` (the true value lies between),
    ``better`` ("higher" or "lower").
    """
    out: list[dict[str, Any]] = []

    def add(family: str, name: str, lo: Any, up: Any, better: str, kind: str = "num") -> None:
        out.append({"family": family, "name": name, "lower": lo, "upper": up, "better": better, "kind": kind})

    md = m.get("max_delta", {})
    if "median" in md:
        add("median largest \u03b4", "median largest \u03b4 keeping a test input's label", md["median"]["lower"], md["median"]["upper"], "higher")
        add("worst-case largest \u03b4", "smallest largest \u03b4 over the test inputs", md["min"]["lower"], md["min"]["upper"], "higher")
    for c in m.get("certified", []):
        add("certified test inputs at rounding boxes", f"test inputs certified at {c['bits']}-bit rounding", c["fraction"],
            c.get("fraction_max", 1 - num(c["fraction_falsified"])), "higher", "pct")
    mp = m.get("map")
    if mp and "flippable_fraction" in mp:
        add("flippable random inputs", f"random inputs of the data box flippable at \u03b4={fmt(mp['delta'])}", mp["flippable_fraction"]["lower"],
            mp["flippable_fraction"]["upper"], "lower", "pct")
    for e in m.get("epsilon_global", []):
        add("global \u03b5", f"global \u03b5 at \u03b4={fmt(e['delta'])}", e["lower"], e["upper"], "lower")
    sig = m.get("sigma", [])
    if sig:
        add("\u03c3", f"\u03c3 (largest over classes) at \u03b4={fmt(sig[0]['delta'])}", max(num(s["lower"]) for s in sig),
            max(num(s["upper"]) for s in sig), "lower")
    return out


def _winner(a: dict[str, Any], b: dict[str, Any]) -> int:
    """+1 if bracket a is proved better than b, -1 if b is proved better, 0 if the brackets overlap."""
    sign = 1.0 if a["better"] == "higher" else -1.0
    if sign * num(a["lower"] if sign > 0 else a["upper"]) > sign * num(b["upper"] if sign > 0 else b["lower"]):
        return 1
    if sign * num(b["lower"] if sign > 0 else b["upper"]) > sign * num(a["upper"] if sign > 0 else a["lower"]):
        return -1
    return 0


def rank_models(result: dict[str, Any]) -> dict[str, Any]:
    """Rank the models of a compare result by how well they keep labels.

    Criterion: the median over the test inputs of the largest delta proved to
    keep the label (the lower end of each per-input bracket; higher is
    better), ties broken by the certified fraction at the narrowest rounding
    box.  Since ``lower_i <= delta_i <= upper_i`` for every input, the true
    median lies in ``[median(lower), median(upper)]``; a step of the ranking
    is *proved* when those intervals do not overlap.  When the models include
    ``relu`` and ``linear`` activations, ``paper_finding`` compares the two on
    every measure of :func:`criteria`.
    """
    models = [m for m in result.get("models", []) if _has(m, "max_delta.median.lower")]
    n_points = result.get("data", {}).get("n_points")
    criterion = (f"median over the {n_points} test inputs of the largest parameter change \u03b4 (every weight and bias) "
                 "proved to keep each input's label (higher is better)")
    out: dict[str, Any] = {"criterion": criterion, "order": [], "proved_steps": []}
    if not models:
        out["text"] = "No ranking: no model finished its per-input \u03b4 queries."
    else:
        def narrowest(m: dict[str, Any]) -> float:
            rows = sorted(m.get("certified", []), key=lambda c: c["bits"])
            return num(rows[0]["fraction"]) if rows else 0.0

        order = sorted(models, key=lambda m: (-num(m["max_delta"]["median"]["lower"]), -narrowest(m), m["name"]))
        steps = [num(a["max_delta"]["median"]["lower"]) > num(b["max_delta"]["median"]["upper"]) for a, b in zip(order, order[1:])]
        chain = "".join(f"{m['name']} ({fmt(m['max_delta']['median']['lower'])})" + ((" > " if steps[i] else " \u2265? ") if i < len(steps) else "")
                        for i, m in enumerate(order))
        proved = "every step is proved (the medians' brackets do not overlap)" if all(steps) else "'\u2265?' marks steps the brackets do not separate"
        text = f"Ranking by the {criterion}: {chain}; {proved}." if len(order) > 1 else f"One model, no ranking: the {criterion} is {chain}."
        out.update(order=[m["name"] for m in order], proved_steps=steps, text=text)
    finding = paper_finding(result)
    if finding is not None:
        out["paper_finding"] = finding
    return out


def paper_finding(result: dict[str, Any]) -> dict[str, Any] | None:
    """Is the ReLU model proved more robust than the linear one (the seed paper's finding), measure by measure?"""
    by = {m.get("activation") or m["name"]: m for m in result.get("models", [])}
    if "relu" not in by or "linear" not in by:
        return None
    cr = {c["name"]: c for c in criteria(by["relu"])}
    rows = []
    for c in criteria(by["linear"]):
        if c["name"] in cr:
            w = _winner(cr[c["name"]], c)
            rows.append({"family": c["family"], "name": c["name"], "better": c["better"], "kind": c["kind"], "relu": {k: cr[c["name"]][k] for k in ("lower", "upper")},
                         "linear": {k: c[k] for k in ("lower", "upper")}, "winner": {1: "relu", -1: "linear", 0: "undecided"}[w]})
    families: dict[str, set[str]] = {}
    for r in rows:
        families.setdefault(r["family"], set()).add(r["winner"])
    fam = {f: (w - {"undecided"}).pop() if len(w - {"undecided"}) == 1 else ("mixed" if len(w - {"undecided"}) > 1 else "undecided")
           for f, w in families.items()}
    wins = {k: [f for f, w in fam.items() if w == k] for k in ("relu", "linear", "mixed", "undecided")}
    if not (wins["relu"] or wins["linear"] or wins["mixed"]):
        verdict, holds = "is not decided by the proved brackets", None
    elif not (wins["linear"] or wins["mixed"]):
        verdict, holds = "holds", True
    elif not (wins["relu"] or wins["mixed"]):
        verdict, holds = "does not hold (the linear model is proved more robust)", False
    else:
        verdict, holds = "holds only in part", None
    parts = [f"{who} is proved better on {', '.join(wins[k])}" for k, who in (("relu", "ReLU"), ("linear", "linear")) if wins[k]]
    parts += [f"{k} on {', '.join(wins[k])}" for k in ("mixed", "undecided") if wins[k]]
    text = (f"The seed paper's finding (the ReLU MLP keeps labels under parameter changes better than the same MLP with linear "
            f"hidden units) {verdict} on this data, over {len(fam)} kinds of measure: " + "; ".join(parts) + ".")
    return {"holds": holds, "verdict": verdict, "text": text, "families": fam, "criteria": rows}


# ----------------------------------------------------------------------------- renderers


def _compare(page: _Page) -> str:
    res = page.result
    models = res.get("models", [])
    data, settings = res.get("data", {}), res.get("settings", {})
    page.add("<h1>Which activation keeps its labels when the parameters are rounded?</h1>")
    page.add(f'<p class="sub">{_esc(data.get("path") or "ONNX models")}: {len(models)} models; {_esc(data.get("n_points"))} test inputs '
             f'from {_esc(data.get("points_from", "the data"))}; '
             f"paramverify {_esc(res.get('paramverify_version', ''))}; {fmt(res.get('time_s'), 's')} s</p>")
    if not res.get("complete", True) or res.get("missing"):
        page.add('<div class="banner"><b>Incomplete run</b> (interrupted); what finished is shown. Missing: '
                 + _esc("; ".join(res.get("missing", [])) or "see below") + "</div>")
    ranking = res["ranking"] if isinstance(res.get("ranking"), dict) else rank_models(res)
    page.add(f'<p class="conclusion">{_esc(ranking["text"])}</p>')
    deltas, bits, ref = settings.get("deltas", []), settings.get("bits", []), settings.get("ref_delta")
    header = ["model", "test<br>accuracy"] + [f"certified<br>{b}-bit" for b in bits] + ["median<br>largest \u03b4", f"flippable<br>at \u03b4={fmt(ref)}"]
    header += [f"\u03b5 at<br>\u03b4={fmt(d)}" for d in deltas]
    rows = []
    for i, m in enumerate(models):
        p = f"models.{i}"
        row = [f"<b>{_esc(m['name'])}</b>", page.n(f"{p}.accuracy.test", "pct")]
        cert = {c["bits"]: j for j, c in enumerate(m.get("certified", []))}
        row += [page.bracket(f"{p}.certified.{cert[b]}", "lower", "pct", ("fraction", "fraction_max")) if b in cert else _MISSING for b in bits]
        row.append(page.bracket(f"{p}.max_delta.median", "lower"))
        row.append(page.bracket(f"{p}.map.flippable_fraction", "upper", "pct"))
        eps = {e["delta"]: j for j, e in enumerate(m.get("epsilon_global", []))}
        row += [page.bracket(f"{p}.epsilon_global.{eps[d]}") if d in eps else _MISSING for d in deltas]
        rows.append(row)
    page.add("<h2>Summary</h2>")
    page.table(header, rows, "summary")
    page.add(f'<p class="sub">Each cell: the <b>proved</b> bound, and in grey the value a concrete witness reaches (the true value lies '
             f"between). Certified b-bit: share of the test inputs whose label provably survives every parameter in the b-bit symmetric "
             f"per-tensor rounding box (grey: share not refuted by a flip replayed on onnxruntime). Median largest \u03b4: over the test "
             f"inputs, of the largest \u03b4 such that no change |p - p0| \u2264 \u03b4 of the weights and biases flips the label. Flippable: share "
             f"of {_esc(models[0].get('map', {}).get('n', '')) if models else ''} random inputs of the data box whose label some change "
             f"|p - p0| \u2264 {fmt(ref)} can flip. \u03b5: largest output change over the whole data box. \u03c3 per class: see the details.</p>")
    if "paper_finding" in ranking:
        _finding(page, ranking["paper_finding"], "ranking.paper_finding" if ranking is res.get("ranking") else None)
    page.add("<h2>Output change and label keeping against \u03b4</h2>")
    page.images([(plot_epsilon_curves(models), "Largest output change \u03b5 against \u03b4 (band: proved bracket)")])
    page.images([(plot_delta_curves(models), "Share of test inputs whose label is kept at \u03b4"),
                 (plot_certified_bars(models), "Labels at quantization rounding boxes")])
    maps = [m for m in models if "grid" in m.get("map", {})]
    if maps:
        norm = shared_norm([num(v) for m in maps for v in m["map"]["eps_upper"]])
        page.add("<h2>Decision boundaries (the seed paper's Figures 6-8)</h2>")
        page.add('<p class="sub">Left: proved local \u03b5 at random inputs (one colour scale for all models). Right: inputs whose label is '
                 "certified, flipped (a flip replayed on onnxruntime) or undecided, and the \u03c3 bands: outside them no label can flip.</p>")
        feats = data.get("features", ["x1", "x2"])
        page.images([(plot_map(m, feats, norm), f"{m['name']}: decision boundary, \u03b5, flippable inputs and \u03c3 bands") for m in maps])
    _compare_details(page, models)
    return "activation comparison"


_MISSING = '<span class="missing">missing</span>'


def _finding(page: _Page, pf: dict[str, Any], path: str | None) -> None:
    """The ReLU-vs-linear table; numbers carry data-keys when they come from the stored ranking."""
    page.add(f'<h2>The seed paper\'s finding</h2><p class="conclusion">{_esc(pf["text"])}</p>')
    rows = []
    for j, r in enumerate(pf["criteria"]):
        # every measure here is proved on its robust side: a lower end for "higher is better", an upper end otherwise
        side, kind = ("lower" if r["better"] == "higher" else "upper"), r.get("kind", "num")
        cells = []
        for who in ("relu", "linear"):
            if path is not None:
                cells.append(page.bracket(f"{path}.criteria.{j}.{who}", side, kind))
            else:
                cells.append(f"[{_esc(fmt(r[who]['lower'], kind))}, {_esc(fmt(r[who]['upper'], kind))}]")
        win = {"relu": "ReLU", "linear": "linear", "undecided": "not separated"}[r["winner"]]
        rows.append([_esc(r["name"]), f"{r['better']} is better", *cells, f"<b>{win}</b>" if r["winner"] != "undecided" else win])
    page.table(["measure", "", "relu", "linear", "proved better"], rows, "finding", text_cols=2)


def _compare_details(page: _Page, models: Sequence[dict[str, Any]]) -> None:
    res = page.result
    page.add("<h2>Per-model details</h2><details><summary>every bracket with its method and time</summary>")
    rows = []
    for i, m in enumerate(models):
        p, name = f"models.{i}", _esc(m["name"])
        for j, e in enumerate(m.get("epsilon_global", [])):
            rows.append([name, "global \u03b5 (data box)", page.n(f"{p}.epsilon_global.{j}.delta"), page.bracket(f"{p}.epsilon_global.{j}"),
                         page.n(f"{p}.epsilon_global.{j}.gap"), page.n(f"{p}.epsilon_global.{j}.time_s", "s"), _esc(e.get("method", ""))])
        for j, e in enumerate(m.get("epsilon_local", [])):
            rows.append([name, "local \u03b5, largest over the test inputs", page.n(f"{p}.epsilon_local.{j}.delta"),
                         page.bracket(f"{p}.epsilon_local.{j}.max", "upper"), "", page.n(f"{p}.epsilon_local.{j}.time_s", "s"), _esc(e.get("method", ""))])
        for j, sg in enumerate(m.get("sigma", [])):
            rows.append([name, f"\u03c3 class {sg['class']} ({_esc(sg.get('class_name', ''))})", page.n(f"{p}.sigma.{j}.delta"),
                         page.bracket(f"{p}.sigma.{j}"), page.n(f"{p}.sigma.{j}.gap"), page.n(f"{p}.sigma.{j}.time_s", "s"), _esc(sg.get("method", ""))])
        if _has(m, "max_delta.min"):
            rows.append([name, "largest \u03b4 keeping the label: worst test input", "", page.bracket(f"{p}.max_delta.min", "lower"), "",
                         page.n(f"{p}.max_delta.time_s", "s"), _esc(m["max_delta"].get("method", ""))])
        for j, c in enumerate(m.get("certified", [])):
            q = f"{p}.certified.{j}"
            rows.append([name, f"test inputs at {c['bits']}-bit rounding: certified / flipped / undecided", "",
                         f"{page.n(q + '.certified', 'int')} / {page.n(q + '.falsified', 'int')} / {page.n(q + '.unknown', 'int')}", "",
                         page.n(q + ".time_s", "s"), _esc(c.get("method", ""))])
        if _has(m, "map.certified"):
            q = f"{p}.map"
            rows.append([name, "random inputs of the data box: certified / flipped / undecided", page.n(q + ".delta"),
                         f"{page.n(q + '.certified', 'int')} / {page.n(q + '.flippable', 'int')} / {page.n(q + '.unknown', 'int')}", "",
                         page.n(q + ".time_s", "s"), "batched per-input bounds; greedy box-corner flips replayed on onnxruntime"])
    page.table(["model", "quantity", "\u03b4", "bracket", "gap", "time (s)", "method"], rows, text_cols=(0, 1, 6))
    acc_rows = [[_esc(m["name"]), _esc(m.get("activation") or ""), _esc(m.get("onnx", "")), page.n(f"models.{i}.accuracy.train", "pct"),
                 page.n(f"models.{i}.accuracy.test", "pct"), page.n(f"models.{i}.n_parameters", "int"), page.n(f"models.{i}.time_s", "s")]
                for i, m in enumerate(models)]
    page.table(["model", "activation", "ONNX file", "train accuracy", "test accuracy", "parameters", "time (s)"], acc_rows, text_cols=3)
    page.add("</details>")
    if res.get("missing") or res.get("incomplete"):
        page.add("<h2>Missing and incomplete</h2><ul>" + "".join(f'<li class="missing">missing: {_esc(x)}</li>' for x in res.get("missing", []))
                 + "".join(f'<li class="warn">incomplete (bracket still valid): {_esc(x)}</li>' for x in res.get("incomplete", [])) + "</ul>")
    data = {k: v for k, v in res.get("data", {}).items() if k != "points"}
    page.add("<h2>Settings</h2>")
    rows = [[_esc(k), _esc(json.dumps(v))] for k, v in [*res.get("settings", {}).items(), *data.items(), *res.get("training", {}).items()]]
    page.table(["setting", "value"], rows, "meta", text_cols=2)


def _bound(page: _Page) -> str:
    res = page.result
    q = res.get("quantity", res.get("property", ""))
    page.add(f"<h1>Bound: {_esc(q)} of {_esc(res.get('model', ''))}</h1>")
    if not res.get("complete", True):
        page.add(f'<div class="banner"><b>Incomplete</b> (the bracket is still valid): {_esc(res.get("note", ""))}</div>')
    rows = [[_esc(q), _esc(res.get("proof_side", "")), _esc(res.get("method", "")), page.bracket(""), page.n("gap"), page.n("time_s", "s")]]
    labels, lo, up = [str(q)], [num(res.get("lower"))], [num(res.get("upper"))]
    for j, pc in enumerate(res.get("per_class", [])):
        rows.append([f"class {_esc(pc.get('class'))}", _esc(pc.get("proof_side", "")), _esc(pc.get("method", "")),
                     page.bracket(f"per_class.{j}"), page.n(f"per_class.{j}.gap"), page.n(f"per_class.{j}.time_s", "s")])
        labels.append(f"class {pc.get('class')}")
        lo.append(num(pc.get("lower")))
        up.append(num(pc.get("upper")))
    page.table(["quantity", "proved end", "method", "bracket", "gap", "time (s)"], rows, text_cols=3)
    page.images([(plot_bracket_rows(labels, lo, up, "proved bracket(s)"), "bars end at the proved bound; the dark part is the bracket")])
    _problem_meta(page)
    if "witness" in res:
        _witness(page, "witness")
    return f"bound {q}"


def _problem_meta(page: _Page) -> None:
    res = page.result
    rows = [[_esc(k), _esc(json.dumps(res[k]))] for k in ("model", "backend", "box", "region", "note") if k in res]
    page.add("<h2>Problem</h2>")
    page.table(["field", "value"], rows, "meta", text_cols=2)


def _witness(page: _Page, path: str) -> None:
    w = get_path(page.result, path)
    rows = [["input", _esc(w.get("input"))], ["nominal output", _esc(w.get("nominal_output"))],
            ["perturbed output", _esc(w.get("perturbed_output"))], ["replayed on onnxruntime", _esc(w.get("replayed_on_onnxruntime"))]]
    rows += [[f"parameter {_esc(k)}", _esc(json.dumps(v))] for k, v in w.get("parameters", {}).items()]
    page.add(f"<h2>{'Counterexample' if path == 'counterexample' else 'Witness (the concrete end of the bracket)'}</h2>")
    page.table(["field", "value"], rows, "meta", text_cols=2)


def _verify(page: _Page) -> str:
    res = page.result
    v = str(res.get("verdict", "unknown"))
    page.add(f"<h1>Verify: {_esc(res.get('property', ''))} on {_esc(res.get('model', ''))}</h1>")
    page.add(f'<p class="conclusion">Verdict: <span class="verdict-{_esc(v)}">{_esc(v.upper())}</span> '
             f"({_esc(res.get('method', ''))}, {page.n('time_s', 's')} s)</p>")
    if "reason" in res:
        page.add(f"<p>Reason: {_esc(res['reason'])}</p>")
    _problem_meta(page)
    if "counterexample" in res:
        _witness(page, "counterexample")
    return f"verify {res.get('property', '')}: {v}"


def _reproduce(page: _Page, base_dir: str) -> str:
    res = page.result
    page.add("<h1>Reproduction of the seed paper's case studies (Table 1, Figures 6-8)</h1>")
    rows, labels, lo, up = [], [], [], []
    for j, c in enumerate(res.get("cells", [])):
        q = c.get("quantity", "") + (f" class {c['class']}" if "class" in c else "")
        rows.append([_esc(c.get("study", "")), _esc(q), page.n(f"cells.{j}.delta"), page.bracket(f"cells.{j}"),
                     page.n(f"cells.{j}.gap"), page.n(f"cells.{j}.time_s", "s"), _esc(fmt(c.get("meets_gap_target")))])
        labels.append(f"{c.get('study')} d={c.get('delta')} {q}")
        lo.append(num(c.get("lower")))
        up.append(num(c.get("upper")))
    page.table(["model", "quantity", "\u03b4", "bracket", "gap", "time (s)", "meets gap target"], rows, text_cols=2)
    page.images([(plot_bracket_rows(labels, lo, up, "Table 1: proved brackets"), "Table 1: bars end at the proved bound; the dark part is the bracket")])
    for path in res.get("figures", []):
        uri = file_uri(path) or file_uri(os.path.join(base_dir, os.path.basename(path)))
        if uri:
            page.images([(uri, os.path.basename(path))])
        else:
            page.add(f'<p class="missing">figure {_esc(path)} not found</p>')
    return "Reproduction of the seed paper's case studies"


def render_html(result: dict[str, Any], base_dir: str = ".") -> str:
    """One self-contained HTML page for a JSON result (compare, bound, verify, reproduce).

    ``base_dir`` is where figure files named in a reproduce result are
    looked for when their recorded path does not exist.
    """
    if not isinstance(result, dict):
        raise SpecError("result", "must be a JSON object", "pass the output of --json or a results.json")
    page = _Page(result)
    command = result.get("command")
    renderers: dict[str, Callable[[], str]] = {
        "compare": lambda: _compare(page), "bound": lambda: _bound(page),
        "verify": lambda: _verify(page), "reproduce": lambda: _reproduce(page, base_dir),
    }
    if isinstance(command, str) and (command == "attack" or command.startswith("sq ")):
        from paramverify.attacks.report import render_attack

        renderers[command] = lambda: render_attack(page, base_dir)
    if command not in renderers:
        raise SpecError("result", f"unknown result kind {command!r}", "render the JSON of compare, bound, verify or reproduce")
    title = renderers[command]()
    return _document(f"paramverify: {title}", "\n".join(page.parts))


def load_result(path: str) -> dict[str, Any]:
    """Read a JSON result file; errors say what is wrong with it."""
    if not os.path.isfile(path):
        raise SpecError("result", f"file '{path}' not found", "pass a JSON file written by --json or reproduce")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError("result", f"'{path}' is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SpecError("result", f"'{path}' must hold one JSON object")
    return data


def write_report(result: dict[str, Any], path: str, base_dir: str = ".") -> str:
    """Render ``result`` and write it to ``path``; returns the path."""
    check_output_path(path, "output")
    text = render_html(result, base_dir)
    write_text(path, text)  # atomic: an interrupted write leaves the earlier report intact
    return path


def add_report_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``paramverify report RESULT.json -o report.html``."""
    p = subparsers.add_parser("report", help="render a JSON result as a self-contained HTML report",
                              description="Render the JSON of compare, bound, verify or reproduce as one HTML file "
                              "(images embedded, opens offline).")
    p.add_argument("result", metavar="RESULT.json", help="a JSON result (--json output or reproduce's results.json)")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(handler=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``paramverify report``; returns the exit code (0)."""
    check_output_path(args.output, "output")
    result = load_result(args.result)
    write_report(result, args.output, base_dir=os.path.dirname(os.path.abspath(args.result)))
    if not getattr(args, "quiet", False):
        print(f"wrote {args.output}")
    return 0
