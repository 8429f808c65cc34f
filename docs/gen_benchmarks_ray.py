"""The "Scale-out on Ray" section of docs/benchmarks.md, from benchmarks/results/ray.json.

Imported by docs/gen_benchmarks.py; ``ray(data)`` returns the section's body.
"""

from __future__ import annotations

from typing import Any

from benchfmt import get, num, table, verdict


def _bnb_row(name: str, b: dict[str, Any], ok: Any) -> list[str]:
    return [f"{name}, {b['boxes']} boxes (L-inf radius {b['radius']:g})", num(b["one_process_s"], ".1f")
            + f" ({num(b.get('one_process_cores'), '.2f')} cores)", num(b["ray_s"], ".1f"), num(b["speedup"], ".2f") + "x",
            f"[{num(b['one_process'][0], '.6g')}, {num(b['one_process'][1], '.6g')}] / [{num(b['ray'][0], '.6g')}, {num(b['ray'][1], '.6g')}]"
            + (" (overlap)" if b["sound_overlap"] else " (DISJOINT)"), verdict(ok)]


def ray(d: dict) -> str:
    a, b, ov, m, t = d["dataset"], d["bnb"], d["overhead"], d["model"], d["targets"]
    digits = d.get("bnb_digits")
    w = d["workers"]
    head = (f"Measured with `{'python benchmarks/bench_ray.py --quick' if d.get('quick') else 'python benchmarks/bench_ray.py'}`"
            f" on {w} local workers, {b.get('boxes_per_task', '?')} boxes per branch-and-bound task; load average "
            f"{', '.join(num(x, '.2f') for x in get(d, 'machine', 'load_average_1_5_15', default=[]))}."
            + (f" Note: {d['note']}" if d.get("note") else "") + "\n")
    rows = [
        [f"(a) label certificates, {a['images']} MNIST images, {a['bits']}-bit box", num(a["one_process_s"], ".1f"), num(a["ray_s"], ".1f"),
         num(a["speedup"], ".2f") + "x", "identical" if a["identical"] else "DIFFERENT", verdict(t.get("dataset"))],
        _bnb_row("(b) branch and bound, MNIST 784-64-64-10 at image 0", b, t.get("bnb")),
    ]
    if digits is not None:
        rows.append(_bnb_row("(b2) branch and bound, digits 64-64-64-10 at image 1,500", digits, t.get("bnb_digits")))
    cnn = d.get("bnb_cnn")
    if cnn is not None:
        rows.append(_bnb_row("(b3) branch and bound, MNIST CNN with pooling at image 0", cnn, t.get("bnb_cnn")))
    out = head + "\n" + table(["workload", "one process s", f"{w} workers s", "speedup", "results (one process / Ray)",
                               f">= {t.get('speedup')}x"], rows)
    if "bnb_met_by" in t:
        met = t["bnb_met_by"]
        out += ("\n\nTarget (b), one branch-and-bound query of >= 60 s in one process at >= "
                f"{t.get('speedup')}x: {'met by ' + ', '.join(met) if met else 'not met by any query'}; "
                "per query in the last column (a query's per-box cost decides it: docs/scaling.md).")
    out += ("\n\nThe one-process column's cores are its CPU time over wall time: numpy's BLAS threads run on both cores "
            "in one process (docs/scaling.md says what they buy on each query).")
    out += (f"\n\nTask overhead: Ray start-up {num(d.get('ray_startup_s'), '.1f')} s; an empty task "
            f"{num(ov['per_task_empty_s'] * 1e3, '.2f')} ms; a task with {ov['boxes_per_task']} boxes "
            f"({num(ov['bytes_per_task_boxes'] / 1e3, '.0f')} kB) {num(ov['per_task_with_boxes_s'] * 1e3, '.2f')} ms. "
            f"Bytes per task: (a) {num(a['bytes_per_task'] / 1e3, '.1f')} kB, (b) {num(b['bytes_per_task'] / 1e3, '.0f')} kB; "
            f"shipped once per run through the object store: (a) {num(a['shipped_once_bytes'] / 1e6, '.2f')} MB, "
            f"(b) {num(b['shipped_once_bytes'] / 1e6, '.2f')} MB. B&B (b): bound evaluations {num(b['bound_s'], '.1f')} s of "
            # the split comes from the first one-process run (with --repeat the column above is the fastest run)
            f"{num(b.get('one_process_runs_s', [b['one_process_s']])[0], '.1f')} s in the first one-process run "
            f"(driver's serial share {num(100 * b['serial_fraction'], '.0f')}%), "
            f"{num(b['per_box_bound_s'] * 1e3, '.1f')} ms per box; boxes per task for < 5% task overhead: "
            f"{m['bnb']['boxes_per_task_for_5pct']}.")
    if cnn is not None:
        out += (f" B&B (b3): {num(cnn['per_box_bound_s'], '.2f')} s per box, driver's serial share "
                f"{num(100 * cnn['serial_fraction'], '.0f')}%, {cnn['tasks']} tasks in {cnn['steps']} steps; workers busy "
                f"{num(100 * cnn['split']['worker_busy_fraction'], '.0f')}% of the time.")
    out += "\n\n"
    rows = [[wk, num(m["dataset"][wk]["50"], ".1f"), num(m["dataset"][wk]["10000"], ".1f"), num(m["bnb"][wk]["batch_128"], ".2f"),
             f"{num(m['bnb'][wk]['batch_grown'], '.2f')} ({m['bnb'][wk]['grown_batch_boxes']} boxes)"] for wk in m["dataset"]]
    out += "Predicted speedup (model of `docs/scaling.md`, fitted to the numbers above):\n\n"
    out += table(["workers", "(a) 50 images", "(a) 10,000 images", "(b) batch of 128 boxes (as now)", "(b) batch grown with W"], rows)
    return out + "\n"
