"""HTML for the JSON of ``attack`` and ``sq attack|detect|aip|train`` (used by ``paramverify report``)."""

from __future__ import annotations

import os
from typing import Any

from paramverify.report_figures import file_uri


def _figure(path: Any, base_dir: str) -> str | None:
    if not isinstance(path, str):
        return None
    for p in (path, os.path.join(base_dir, os.path.basename(path))):
        if os.path.isfile(p):
            return file_uri(p)
    return None


def render_attack(page: Any, base_dir: str = ".") -> str:
    """Fill ``page`` (a :class:`paramverify.report._Page`) for an attack or SQ result; returns the title."""
    r = page.result
    command = str(r.get("command"))
    page.add(f"<h1>paramverify {command}</h1>")
    meta = [["model", page.n("model", "text")], ["data", page.n("data", "text")], ["images", page.n("images")]]
    if command == "sq train":
        meta += [["kind", page.n("kind", "text")], ["clean accuracy", page.n("test_accuracy", "pct")]]
    page.table(["", ""], meta, cls="meta")
    if not r.get("complete", True):
        page.add('<p class="banner">Incomplete: the run was cut short (timeout or interrupt); the rows show what '
                 "was done.</p>")
    rows = []
    for i, row in enumerate(r.get("results", [])):
        pre = f"results.{i}."
        det = row.get("detection") or {}
        rows.append([page.n(pre + "attack", "text"), page.n(pre + "norm", "text"), page.n(pre + "eps"),
                     page.n(pre + "engine", "text"), page.n(pre + "eot"), page.n(pre + "images"),
                     page.n(pre + "clean_accuracy", "pct"), page.n(pre + "robust_accuracy", "pct"),
                     page.n(pre + "max_distance"),
                     page.n(pre + "mi_adv") if row.get("mi_adv") is not None else "",
                     page.n(pre + "detection.auc") if "auc" in det else ""])
    if rows:
        page.add("<h2>Robust accuracy under attack (an upper bound on the true robust accuracy)</h2>")
        page.table(["attack", "norm", "eps", "engine", "EOT", "images", "clean", "attacked", "max distance",
                    "MI attacked", "detector AUC"], rows, text_cols=(0, 1, 3))
    if r.get("mi_clean") is not None:
        page.add(f"<p>Mean MI of the clean images: {page.n('mi_clean')} bits (the detector's threshold).</p>")
    pairs = r.get("certified_vs_attacked") or []
    if pairs:
        page.add("<h2>Certified (lower) and attacked (upper) robust accuracy</h2>")
        page.table(["attack", "eps (L2)", "certified at radius", "certified (smoothed classifier)", "attacked"],
                   [[page.n(f"certified_vs_attacked.{i}.attack", "text"), page.n(f"certified_vs_attacked.{i}.eps"),
                     page.n(f"certified_vs_attacked.{i}.certified_at_radius"),
                     page.n(f"certified_vs_attacked.{i}.certified_lower", "pct"),
                     page.n(f"certified_vs_attacked.{i}.attacked_upper", "pct")] for i in range(len(pairs))], text_cols=1)
    page.images([(_figure(r.get("aip_png"), base_dir), "Adversarial information plane"),
                 (_figure(r.get("roc_png"), base_dir), "MI detector ROC curves")])
    return f"{command} ({r.get('model', '')})"
