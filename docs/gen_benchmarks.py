"""Regenerate docs/benchmarks.md from benchmarks/results/*.json: `python docs/gen_benchmarks.py`.

Every number on the page is read from a JSON file written by a script in benchmarks/; the
prose here only says how the numbers were taken and how to read them.  A missing file or
field renders as a "not measured" line.  tests/test_docs.py fails when the page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the page's sections live beside this file

import gen_benchmarks_cnn as CNN  # noqa: E402
import gen_benchmarks_compress  # noqa: E402
import gen_benchmarks_int8  # noqa: E402
import gen_benchmarks_ray  # noqa: E402
import gen_benchmarks_search_learning as SL  # noqa: E402
import gen_benchmarks_sq  # noqa: E402
import gen_standard  # noqa: E402
from benchfmt import ERRORS, RESULTS, ROOT, SCRIPT, get, guarded, isnum, load, num, pair, span, table, verdict  # noqa: E402,F401

NAMES = ("casestudies", "scaling", "mnist", "large", "cnn", "soundness", "soundness_extreme", "smoothing", "smoothing_incremental_N20000",
         "search", "search_learning", "sq", "ray", "int8")
#: the scaling sweep varies one factor at a time around this base (benchmarks/bench_scaling.py BASE)
BASE_D, BASE_WIDTH = 16, 64


def large_models(d: dict) -> list[dict]:
    """The models of large.json; the old format (top-level rows, one random network) as one model."""
    if isinstance(d.get("models"), list):
        return d["models"]
    sizes = d.get("sizes")
    return [{"model": "random", "source": f"tests/netgen.random_mlp({d.get('seed', '?')}, {sizes}, 'relu'), built at run time",
             "pass": d.get("pass"), "all_refuted": d.get("all_refuted"), "rows": d["rows"],
             "wider_boxes": d.get("wider_boxes", [])}]

# ----------------------------------------------------------------------------- intro
SCRIPTS = """| script | what | scale down / up |
|---|---|---|
| `bench_casestudies.py --backends bounds,z3` | seed case studies (CAT, ATH-ReLU, ATH-Linear): largest epsilon and smallest sigma per class over the data box, both backends | `--timeout S`, `--tolerance T` (default 1e-5, the target) |
| `bench_scaling.py` | random ReLU MLPs swept in width, depth and input size, 8- and 4-bit boxes; global change on the seed models and a 2-16-16-1 MLP | `--quick`, `--full-grid`, `--bits 8,4`, `--timeout S` |
| `bench_mnist.py` | the trained 784-64-64-10 MNIST MLP, all layers: label certificates for 10/9/8/7-bit boxes; the 8-bit epsilon target | `--quick`, `--images N`, `--eps-images N`, `--bits`, `--timeout S` |
| `bench_large.py` | 784-1024-512-256-256-256-10 MLPs (robust-trained, standard-trained, random), all layers, 8-bit box | `--quick`, `--models`, `--inputs N`, `--bits B`, `--cert-bits`, `--no-eps`, `--timeout S` |
""" + CNN.SCRIPT_ROW + """
| `bench_soundness.py` | the soundness corpus: random small networks checked against z3 and exact sampling; `--tier extreme`: networks at magnitudes up to 1e6 (inputs, weights) and 1e8 (pre-activations), every kernel against a 50-digit reference | `--quick`, `--n N`, `--start S`, `--jobs J`, `--z3-timeout`, `--bounds-timeout`, `--tier` |
| `bench_smoothing.py` | randomized smoothing: throughput, incremental certification of an int8 copy | `--device`, `--n`, `--batches`, `--inc-images`, `--inc-n`, `--inc-nq` |
| `bench_search.py` | mixed-precision search (DDPG against baselines) | `--budgets`, `--episodes`, `--device`, `--no-formal` |
""" + SL.SCRIPT_ROW + """
| `bench_compress.py` | robust compression search: the meta-trained agent fine-tuned on a held-out task against uniform scaling, random search and the deepen-before-widening rule at equal evaluation counts, 3 seeds; writes `compress_curves.png` | `--seeds`, `--meta-episodes`, `--evaluations`, `--finetune-steps`, `--eval-images`, `--test-images`, `--work DIR`, `--reuse-meta` |
| `bench_int8.py` | the digits CNN against its onnxruntime int8 QDQ and QOperator copies: label agreement and the bracket on the largest int8-float output difference on balls around test images, checked on onnxruntime samples | `--variant standard|penalized`, `--n`, `--first`, `--radius`, `--timeout`, `--eps-timeout`, `--samples` |
| `bench_ray.py` | scale-out on Ray (`.[ray]` extra): 2-worker speedup on MNIST label certificates and three branch-and-bound queries (MNIST and digits MLPs, MNIST CNN), task overhead, the model of `docs/scaling.md` | `--quick`, `--workers W`, `--images N`, `--bnb-splits N`, `--digits-splits N`, `--digits-radius R`, `--cnn-splits N`, `--cnn-radius R`, `--boxes-per-task K`, `--repeat R`, `--note TEXT` |
| `train_mnist_mlp.py` | rebuilds `models/mnist_784_64_64_10.onnx` (deterministic) | `--epochs`, `--lr`, `--seed` |
| `train_mnist_large.py` | rebuilds the robust 1.6M-parameter model of `bench_large.py` (`--mode standard`: the standard one) | `--mode`, `--epochs`, `--kappa`, `--lam`, `--out` |
| `train_int8_cnn.py` | rebuilds `models/int8_digits_cnn.onnx` and its QDQ and QOperator copies; `--penalty L` the rounding-sensitivity-penalized variant `int8_digits_cnn_rs.*` (`bench_int8.py --variant penalized`) | `--epochs`, `--penalty L`, `--penalty-eps E` |"""


def intro(R: dict) -> str:
    loads = []
    for n in NAMES:
        v = get(R[n], "machine", "load_average_1_5_15")
        at = "" if v else " (at start)"
        v = v or get(R[n], "machine", "load_average_at_start") or get(R[n], "environment", "load_average_at_start")
        if R[n] is not None:
            loads.append(f"`{n}.json` " + (", ".join(num(x, ".2f") for x in v) + at if isinstance(v, list) else "not recorded"))
    cpus = sorted({c for n in NAMES if R[n] is not None
                   for c in (get(R[n], "machine", "cpus"), get(R[n], "environment", "cpu_count")) if isnum(c)})
    base = get(R["scaling"], "baseline_rss_mb")
    return f"""# Benchmarks

Generated from `benchmarks/results/*.json` by `python docs/gen_benchmarks.py`;
`tests/test_docs.py` checks that this page matches the JSON files. Every script in
`benchmarks/` prints a table with PASS/FAIL per target and writes
`benchmarks/results/<name>.json` (machine, load average, timeouts, every row, and the
competitor figures of `ANCHORS.md` beside ours). Speed targets are checked only here,
never in unit tests. Run from the repository root:

{SCRIPTS}

Peak memory is `resource.getrusage(RUSAGE_SELF).ru_maxrss` (resident set) of one
subprocess per configuration (scaling, large) or of the benchmark process (MNIST); it
includes what a bare child running Python + numpy + onnx + onnxruntime already holds
({num(base, '.0f', 'not recorded')} MB, `baseline_rss_mb` in `scaling.json`). CPU seconds
of each query (`*_cpu_s`) are recorded next to wall times where the script measures them.

**About the numbers below.** Every number on this page is read from the JSON files. They
were taken on a {'/'.join(str(c) for c in cpus) or 'not recorded'}-core machine while other
jobs were running on it, so wall times are inflated over an idle machine. Load averages
(1, 5, 15 min) recorded in the JSON files: {'; '.join(loads) or 'none'}.
"""

# ----------------------------------------------------------------------------- targets at a glance
def _cases_glance(d: dict) -> tuple[str, str]:
    rows = d["rows"]
    met: dict[tuple, bool] = {}
    met_cpu: dict[tuple, bool] = {}
    for r in rows:
        key = (r.get("study"), r.get("quantity"), r.get("delta"), r.get("cls"))
        met[key] = met.get(key, False) or bool(r.get("meets_target"))
        met_cpu[key] = met_cpu.get(key, False) or bool(r.get("meets_target") or r.get("meets_target_cpu"))
    parts = []
    for backend in dict.fromkeys(r.get("backend") for r in rows):
        ok = [r for r in rows if r.get("backend") == backend and r.get("status") == "ok"]
        per = ", ".join(f"{s} {sum(bool(r.get('meets_target')) for r in ok if r.get('study') == s)}/"
                        f"{sum(r.get('study') == s for r in ok)}" for s in dict.fromkeys(r.get("study") for r in ok))
        na = sum(r.get("backend") == backend and r.get("status") != "ok" for r in rows)
        parts.append(f"{backend}: {per} queries meet it (gap {span((r.get('gap') for r in ok), '.1e')}, "
                     f"wall {span(r.get('time_s') for r in ok)} s{f'; {na} n/a' if na else ''})")
    n_met = sum(met.values())
    result = "; ".join(parts) + f". Queries met by some backend: {n_met} of {len(met)}"
    if any("cpu_s" in r for r in rows):
        result += f" in wall time, {sum(met_cpu.values())} of {len(met_cpu)} in CPU time"
    return result, verdict(bool(met) and n_met == len(met)) + ("" if n_met == len(met) else f" ({n_met}/{len(met)})")


def _mnist_glance(d: dict) -> tuple[str, str]:
    t = d["targets"]
    result = (f"{t.get('eps_images_passing', 'n/a')}/{t.get('eps_images', 'n/a')} images; ratio median "
              f"{num(t.get('eps_ratio_median'), '.4f')}, max {num(t.get('eps_ratio_max'), '.4f')}; target ratio reached "
              f"after {span(get(t, 'time_to_target_ratio_s', k) for k in ('median', 'max'))} s (median, max)")
    return result, verdict(t.get("eps_pass"))


def _global_glance(d: dict) -> tuple[str, str]:
    g = d["global"]
    result = (f"ratio {span((r.get('ratio') for r in g), '.4f')} on {', '.join(str(r.get('model')) for r in g)}; "
              f"wall {span(r.get('time_s') for r in g)} s")
    return result, verdict(get(d, "targets", "global_pass"))


def _large_glance(d: dict) -> tuple[str, str]:
    parts = []
    for m in large_models(d):
        rows = [r for r in m.get("rows", []) if "error" not in r]
        counts = ", ".join(f"{sum(r.get('verdict') == v for r in rows)} {v}" for v in dict.fromkeys(r.get("verdict") for r in rows))
        wide = next((r for r in m.get("wider_boxes", []) if r.get("verdict") == "verified"), None)
        parts.append(f"{m.get('model')}: {counts or 'no rows'} of {len(m.get('rows', []))} inputs in "
                     f"{span((r.get('label_time_s') for r in rows), '.1f')} s, peak "
                     f"{span((r.get('peak_rss_mb') for r in rows), '.0f')} MB" + (
                         f" (certified with a {wide.get('bits')}-bit box in {num(wide.get('label_time_s'), '.1f')} s, "
                         f"{num(wide.get('peak_rss_mb'), '.0f')} MB)" if wide else ""))
    return "; ".join(parts), verdict(d.get("pass"))


def _soundness_glance(d: dict) -> tuple[str, str]:
    s = d["summary"]
    result = f"{s.get('cases', 'n/a')} networks, {s.get('violations', 'n/a')} violations, {s.get('errors', 'n/a')} errors"
    return result, verdict(d.get("pass"))


def targets(R: dict) -> str:
    specs = (("seed case studies", "casestudies", lambda d: d.get("target"), _cases_glance),
             ("784-64-64-10, all layers, 8-bit per-tensor box: largest output change at an image", "mnist",
              lambda d: get(d, "targets", "eps_8bit"), _mnist_glance),
             ("global output change over an input box", "scaling", lambda d: get(d, "targets", "global"), _global_glance),
             ("1.6M-parameter MLP, all layers, 8-bit box", "large", lambda d: d.get("target"), _large_glance),
             ("MNIST CNN with pooling (torch export), all parameters, 8-bit labels", "cnn", lambda d: d.get("target"), lambda d: CNN.glance(d, num, verdict)),
             ("soundness corpus", "soundness", lambda d: d.get("target"), _soundness_glance),
             ("soundness corpus, extreme-scale tier", "soundness_extreme", lambda d: d.get("target"), _soundness_glance))
    rows = []
    for what, name, target, glance in specs:
        d = R[name]
        if d is None:
            rows.append([what, "n/a", f"not measured (`{name}.json` missing)", "n/a"])
            continue
        try:
            result, ok = glance(d)
        except ERRORS as exc:
            result, ok = f"not measured (`{name}.json` lacks a field: {exc})", "n/a"
        rows.append([what, target(d) or "not recorded", result, ok])
    return "## Targets at a glance\n\n" + table(["what (issue 3)", "target (from the JSON)", "result", "verdict"], rows) + "\n"


# ----------------------------------------------------------------------------- a. case studies
def casestudies(d: dict) -> str:
    rows = []
    cpu = any("cpu_s" in r for r in d["rows"])
    for r in d["rows"]:
        q = "epsilon" if r.get("cls") is None else f"{r.get('quantity')}[{r['cls']}]"
        head = [r.get("backend"), r.get("study"), q, num(r.get("delta"), "g")]
        if r.get("status") != "ok":
            rows.append(head + [f"n/a: {r.get('reason', '')}", "", "", "", "", r.get("anchor", "")])
            continue
        target = "PASS" if r.get("meets_target") else "FAIL"
        if not r.get("meets_target") and r.get("meets_target_cpu"):
            target = "FAIL (wall), PASS (CPU)"
        rows.append(head + [f"[{num(r.get('lower'), '.8f')}, {num(r.get('upper'), '.8f')}]", num(r.get("gap"), ".1e"),
                            pair(r.get("time_s"), r.get("cpu_s")) if cpu else num(r.get("time_s"), ".2f"),
                            "yes" if r.get("complete") else "no",
                            target, r.get("anchor", "")])
    load = get(d, "machine", "load_average_1_5_15") is not None
    lacks = " and ".join(w for w, has in (("CPU times", cpu), ("load average", load)) if not has)
    return f"""Largest output change (epsilon) and smallest safe margin per class (sigma) over each
study's data box, every weight and bias in `|p - p0| <= delta`.
Target: {d.get('target', 'not recorded')}.
"complete" is false when the query stopped before reaching its tolerance. The
ANCHORS column holds the competitor figures recorded in the JSON (dReal, same kind of
machine).{f' This file records no {lacks}.' if lacks else ''}

{f"Stopping tolerance {num(d.get('tolerance'), 'g')}. " if isnum(d.get('tolerance')) else ''}{d.get('note', '')}

{table(['backend', 'study', 'quantity', 'delta', 'bracket', 'gap', 'wall s' + (' / CPU s' if cpu else ''), 'complete', 'target', 'ANCHORS'], rows)}
"""


# ----------------------------------------------------------------------------- b. scaling
def _sweeps(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    def shape(r: dict) -> tuple[int, list[int], int]:
        s = r.get("sizes") or [0, 0]
        return s[0], s[1:-1], s[-1]

    width = [r for r in rows if shape(r)[0] == BASE_D and len(shape(r)[1]) == 2 and len(set(shape(r)[1])) == 1
             and shape(r)[2] == 10]
    depth = [r for r in rows if shape(r)[0] == BASE_D and set(shape(r)[1]) == {BASE_WIDTH} and shape(r)[2] == 10]
    dim = [r for r in rows if shape(r)[1] == [BASE_WIDTH, BASE_WIDTH] and shape(r)[2] == 10]
    seen = {id(r) for r in width + depth + dim}
    out = [("hidden width", sorted(width, key=lambda r: (shape(r)[1][0], -r.get("bits", 0)))),
           ("depth", sorted(depth, key=lambda r: (len(shape(r)[1]), -r.get("bits", 0)))),
           ("input size", sorted(dim, key=lambda r: (shape(r)[0], -r.get("bits", 0)))),
           ("other configurations", [r for r in rows if id(r) not in seen])]
    return [(n, rs) for n, rs in out if rs]


def _scaling_rows(rows: list[dict]) -> str:
    return table(["config", "parameters", "bits", "upper/lower", "eps wall / CPU s", "eps complete", "label",
                  "label wall / CPU s", "peak MB"],
                 [[r.get("config"), r.get("n_parameters"), r.get("bits"), num(r.get("ratio"), ".4f"),
                   pair(r.get("eps_time_s"), r.get("eps_cpu_s")), "yes" if r.get("eps_complete") else "no",
                   r.get("label"), pair(r.get("label_time_s"), r.get("label_cpu_s")), num(r.get("peak_rss_mb"), ".0f")]
                  for r in rows])


def scaling(d: dict) -> str:
    rows = d["rows"]
    parts = [f"""{d.get('what', '')}. Budget {num(d.get('timeout_s'), 'g')} s per query; peak memory:
{d.get('peak_memory', 'not recorded')}. The sweep varies one factor at a time around d = {BASE_D},
width {BASE_WIDTH}, depth 3 (depth = linear layers). "upper/lower" is the epsilon bracket's
proved upper end over its witnessed lower end; "eps complete" is false when the run
stopped before the 1e-6 tolerance. A "falsified" label carries a counterexample replayed
on onnxruntime, so the label really can flip inside the box.
"""]
    for name, rs in _sweeps(rows):
        parts.append(f"### Sweep: {name}\n\n{_scaling_rows(rs)}\n")
    reading = []
    for bits in sorted({r.get("bits") for r in rows if isnum(r.get("bits"))}, reverse=True):
        rb = [r for r in rows if r.get("bits") == bits and isnum(r.get("ratio"))]
        if rb:
            worst = max(rb, key=lambda r: r["ratio"])
            reading.append(f"at {bits} bits the ratio is {span((r['ratio'] for r in rb), '.4f')} "
                           f"(widest on {worst.get('config')})")
    verdicts = [r.get("label") for r in rows]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    mem = max((r for r in rows if isnum(r.get("peak_rss_mb"))), key=lambda r: r["peak_rss_mb"], default=None)
    stopped = [r for r in rows if r.get("eps_complete") is False]
    if rows:
        parts.append(f"Reading the sweep: {'; '.join(reading)}. Label verdicts: {counts}. Peak memory at most "
                     f"{num(get(mem, 'peak_rss_mb'), '.0f')} MB ({get(mem, 'config')}). {len(stopped)} of {len(rows)} "
                     f"epsilon brackets are incomplete, after {span((r.get('eps_time_s') for r in stopped), '.1f')} s wall.\n")
    anchors = get(d, "anchors", default={})
    if anchors:
        parts.append("ANCHORS (from the JSON):\n\n" + "\n".join(f"- {k}: {v}" for k, v in anchors.items()) + "\n")
    g = d.get("global", [])
    parts.append(f"""### Global output change over an input box

Target: {get(d, 'targets', 'global', default='not recorded')}: {verdict(get(d, 'targets', 'global_pass'))}.

{table(['model', 'bracket', 'upper/lower', 'wall / CPU s', 'peak MB', 'complete', 'target'],
       [[r.get('model'), f"[{num(r.get('lower'), '.8f')}, {num(r.get('upper'), '.8f')}]", num(r.get('ratio'), '.6f'),
         pair(r.get('time_s'), r.get('cpu_s')), num(r.get('peak_rss_mb'), '.0f'), 'yes' if r.get('complete') else 'no',
         verdict(r.get('pass'))] for r in g])}
""")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- c. MNIST
def mnist(d: dict) -> str:
    labels = d["labels"]
    bits = sorted(labels, key=lambda b: -int(b))
    lrows = d.get("label_rows", [])
    top = [r for r in lrows if bits and str(r.get("bits")) == bits[0]]
    correct = sum(r.get("predicted") == r.get("label") for r in top)
    rows = [[b, num(labels[b].get("radius"), ".2e"), labels[b].get("verified"), labels[b].get("certified_and_correct"),
             labels[b].get("falsified"), labels[b].get("unknown"),
             " / ".join(num(get(labels[b], "time_s", k), ".3f") for k in ("mean", "median", "max")),
             num(get(labels[b], "cpu_s", "mean"), ".3f")] for b in bits]
    t = d.get("targets", {})
    eps = d.get("eps_rows", [])
    return f"""Model: `benchmarks/models/{d.get('model', '?')}` (provenance and licence in
`benchmarks/models/PROVENANCE.md`), held-out accuracy {num(d.get('held_out_accuracy'), '.3f')};
{correct} of the {len(top)} benchmark images are classified correctly. Symmetric per-tensor
rounding boxes on all tensors; budget {num(d.get('timeout_s'), 'g')} s per query; peak memory
{num(d.get('peak_rss_mb'), '.0f')} MB ({d.get('peak_memory', 'not recorded')}).

Label certificates at {d.get('images', 'n/a')} held-out images ("radius" is the box's largest
half-width; "certified and correct" also needs the nominal prediction to be the label):

{table(['bits', 'radius', 'certified', 'certified and correct', 'falsified', 'unknown',
        'wall s per image (mean / median / max)', 'CPU s (mean)'], rows)}

A falsified image has a counterexample inside the box, replayed on onnxruntime (the rounding
*box* is far larger than one rounded model, so a flip in the box does not mean the rounded
model itself misclassifies).

Largest output change at an image, 8-bit box ({t.get('eps_images', 'n/a')} images): target
{t.get('eps_8bit', 'not recorded')}. Ratio upper/lower median {num(t.get('eps_ratio_median'), '.6f')}, max
{num(t.get('eps_ratio_max'), '.6f')}; {t.get('eps_images_passing', 'n/a')} of {t.get('eps_images', 'n/a')} images pass;
the bracket reached the target ratio after {num(get(t, 'time_to_target_ratio_s', 'median'), '.2f')} s (median,
max {num(get(t, 'time_to_target_ratio_s', 'max'), '.2f')} s); each run took {span(r.get('time_s') for r in eps)} s wall.
{verdict(t.get('eps_pass'))}. ANCHORS: {get(d, 'anchors', 'eps', default='none recorded')}.
"""


# ----------------------------------------------------------------------------- d. large
def _large_model(m: dict) -> str:
    name = m.get("model", "?")
    info = [f"file `{m['file']}`" if m.get("file") else None,
            f"sha256 `{m['sha256'][:16]}...`" if m.get("sha256") else None,
            f"held-out accuracy {num(m.get('test_accuracy'), '.3f')}" if "test_accuracy" in m else None,
            "training " + ", ".join(f"{k} {v}" for k, v in m["training"].items()) if m.get("training") else None,
            f"source {m['source']}" if m.get("source") else None]
    rows, errors = [], []
    for r in m.get("rows", []):
        if "error" in r:
            errors.append(f"- image {r.get('image')} ({r.get('bits')} bits): error {r['error']}")
            continue
        eps = f"{num(r.get('ratio'), '.3g')}x in {num(r.get('eps_time_s'), '.1f')} s" if "ratio" in r else "not run"
        rows.append([r.get("image"), r.get("label", "-"), r.get("predicted", "-"), num(r.get("margin"), ".3f"),
                     r.get("verdict"), pair(r.get("label_time_s"), r.get("label_cpu_s"), ".1f"),
                     num(r.get("peak_rss_mb"), ".0f"), eps, "PASS" if r.get("certificate_in_target") else "FAIL"])
    wide = [[r.get("bits"), r.get("verdict", f"error: {r.get('error')}"), pair(r.get("label_time_s"), r.get("label_cpu_s"), ".1f"),
             num(r.get("peak_rss_mb"), ".0f"), "yes" if r.get("certificate_in_target") else "no"]
            for r in m.get("wider_boxes", [])]
    out = [f"### Model `{name}`: {verdict(m.get('pass'))}\n",
           f"Provenance: {'; '.join(i for i in info if i) or 'not recorded'}.\n",
           table(["image", "label", "predicted", "margin", "verdict", "label wall / CPU s", "peak MB",
                  "epsilon upper/lower", "target"], rows) + "\n"]
    if errors:
        out.append("\n".join(errors) + "\n")
    if m.get("all_refuted"):
        out.append("Every input tried is falsified: no sound tool can certify any of them in this box.\n")
    if wide:
        first = get(m, "wider_boxes", 0, "image")
        out.append(f"Wider boxes on input {first} (the engine's speed on a provable case):\n\n"
                   + table(["bits", "verdict", "wall / CPU s", "peak MB", "certificate in target"], wide) + "\n")
    return "\n".join(out)


def large(d: dict) -> str:
    models = large_models(d)
    sizes = "-".join(str(s) for s in d.get("sizes", [])) or "?"
    summary = d.get("summary") or "; ".join(f"{m.get('model')}: {verdict(m.get('pass'))}" for m in models)
    parts = [f"""{sizes} ReLU MLPs, every tensor in a symmetric per-tensor {d.get('bits', '?')}-bit rounding
box, held-out MNIST images tried largest nominal margin first, one subprocess per input
(peak memory: {d.get('peak_memory', 'not recorded')}). Budget {num(d.get('timeout_s'), 'g')} s per query.
Target: {d.get('target', 'not recorded')}: {verdict(d.get('pass'))} ({summary}).

`robust` is trained with a quantization-robustness term (`benchmarks/train_mnist_large.py`,
the committed model: a model meant to be quantized, checked before it is), `standard` by the
same script with `--mode standard` (cross-entropy only, trained at run time, not committed),
`random` has random weights (`tests/netgen.random_mlp`). A "falsified" verdict
carries a counterexample inside the box replayed on onnxruntime, so no sound tool can
certify that input; it is a definite answer but not a certificate. "epsilon upper/lower"
is the largest output change's bracket at that input. When no input of a model certifies,
its first input is re-run with wider boxes. ANCHORS: {get(d, 'anchors', 'label', default='none recorded')}.
"""]
    parts += [_large_model(m) for m in models]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- e. soundness
def soundness(d: dict, extreme: bool = False) -> str:
    s = d["summary"]
    counts = s.get("counts", {})
    cfg = d.get("config", {})
    viol = "\n".join(f"- {v}" for v in (d.get("violations", []) + d.get("errors", []))[:20])
    what = ("an enclosure or a proved statement contradicted by the 50-digit mpmath reference at a sampled (x, p)\n"
            "(corners, random, transition and label-boundary points, the engine's witnesses); networks, regimes and\n"
            "checks: `benchmarks/soundness_extreme.py`" if extreme else
            "a proved\nstatement contradicted by an exact (rational) evaluation or by an exact z3 answer")
    legend = ("""Counts over all cases: `kernel_*` runs of each kernel, `enclosure_checks` values checked against the
reference, `regime_*` / `bias_*` / `head_*` how the networks were drawn, `weights_max_ge_1eK` (likewise
`inputs_`, `preacts_`) cases whose largest magnitude is at least 10^K; `label_V` / `F` / `U` the bound
engine's label verdicts.""" if extreme else """Counts over all cases. A two-letter suffix is the verdict of the bound engine, then of z3
(V verified, F falsified, U unknown, `-` not run); a violation would be V on one and an
exact F on the other.""")
    anchors = "" if extreme else f"\nANCHORS: {d.get('anchors', 'none recorded')}.\n"
    return f"""Target: {d.get('target', 'not recorded')}: {verdict(d.get('pass'))}.
{s.get('cases', 'n/a')} cases, {s.get('violations', 'n/a')} violations, {s.get('errors', 'n/a')} errors (crashes);
{num(d.get('wall_s'), '.0f')} s wall, {num(s.get('cpu_time_s'), '.0f')} s CPU. A *violation* is {what}.
{viol}
Configuration: {', '.join(f'`{k}` {v}' for k, v in cfg.items()) or 'not recorded'}.

{legend}

{table(['count', 'value'], [[f'`{k}`', v] for k, v in sorted(counts.items())])}
{anchors}"""


# ----------------------------------------------------------------------------- smoothing and search
def _incremental(name: str, d: dict) -> str:
    inc = d["incremental"]
    env = d.get("incremental_environment") or d.get("environment", {})
    by = inc.get("summary_by_nq", {})
    rows = [[s.get("n_q"), s.get("certified_images"), s.get("sample_ratio_total"), s.get("sample_ratio_median"),
             s.get("sample_ratio_total_float_pa_below_0.99"), s.get("fraction_of_images_ratio_at_least_4"),
             s.get("mean_zeta"), s.get("mean_irs_radius"), s.get("mean_scratch_radius_at_equal_samples")]
            for s in by.values()]
    best = max(by.values(), key=lambda s: s.get("sample_ratio_total", 0), default={})
    return f"""`{name}.json` ({env.get('device', 'device not recorded')}): N = {inc.get('N_float', 'n/a')},
{inc.get('images', 'n/a')} images, combined confidence {inc.get('combined_confidence', 'n/a')}, mean int8
disagreement rate {inc.get('mean_int8_disagreement_rate', 'n/a')}. Target: {inc.get('target', 'not recorded')};
the JSON records no PASS/FAIL: the largest ratio over all images is {best.get('sample_ratio_total', 'n/a')}
(n_q = {best.get('n_q', 'n/a')}), against Ugare et al.'s reported {inc.get('reported_ugare2024_speedup', 'n/a')}x.

{table(['n_q', 'certified', 'ratio, all samples', 'median ratio', 'ratio, pA_low < 0.99', 'share with ratio >= 4',
        'mean zeta', 'mean radius IRS', 'mean radius from scratch, n_q samples'], rows)}
"""


def smoothing(R: dict) -> str:
    parts = ["## Randomized smoothing (`results/smoothing.json`)\n",
             ("Details and the method: docs/smoothing.md. \"ratio\" = samples from scratch / samples for "
              "incremental certification (IRS) at equal radius.\n")]

    def throughput(d: dict) -> str:
        env = d.get("throughput_environment") or d.get("environment", {})
        where = f"Measured on {env.get('device', 'a device not recorded')} (torch {env.get('torch', '?')})" + (
            ", a CPU: the throughput target is for a GPU and is not measured by this file (see docs/smoothing.md)."
            if env.get("device_type") == "cpu" else ".")
        rows = [[r.get("precision"), r.get("batch"), r.get("n_measured"), r.get("samples_per_second"),
                 r.get("seconds_per_image_at_N_100000"), r.get("seconds_per_image_kind"),
                 r.get("reported_cohen2019_seconds_per_image")] for r in d["throughput"]]
        return (f"**Throughput**, {get(d, 'throughput', 0, 'model', default='model not recorded')}. {where}\n\n"
                + table(["precision", "batch", "samples measured", "samples/s", "s/image at N = 1e5", "how",
                         "Cohen et al. 2019 (reported)"], rows) + "\n")

    parts.append(guarded("smoothing", throughput, R["smoothing"]))
    parts.append("**Incremental certification of the int8 copy**\n")
    for name in ("smoothing", "smoothing_incremental_N20000"):
        parts.append(guarded(name, lambda d, n=name: _incremental(n, d), R[name]))
    return "\n".join(parts)


def _search_rows(rows: list[dict]) -> str:
    if not rows:
        return "No rows recorded."
    return table(["method", "bits", "BitOps fraction", "CA@0.25", "ACR", "certifications"],
                 [[r.get("method"), r.get("bits"), num(r.get("bitops_fraction"), ".4f"),
                   num(get(r, "test", "cert_acc@0.25"), ".3f"), num(get(r, "test", "acr"), ".3f"), r.get("certifications")]
                  for r in rows])


def search(d: dict) -> str:
    s = d["sampled"]
    t = s.get("target") or {}
    parts = [f"""Device: {get(d, 'machine', 'device', default='not recorded')}; wall {num(d.get('total_wall_s'), '.0f')} s,
CPU {num(d.get('total_cpu_s'), '.0f')} s. {s.get('sample_counts_note', '')}

Target: {t.get('statement', 'not recorded')}: **{t.get('result', 'n/a')}** (DDPG
{num(t.get('ddpg_cert_acc@0.25'), '.3f')} at {num(t.get('ddpg_bitops_fraction'), '.4f')} of the float BitOps; float
{num(t.get('float_cert_acc@0.25'), '.3f')}; best baseline {t.get('best_baseline', 'n/a')}
{num(t.get('best_baseline_cert_acc@0.25'), '.3f')}). ANCHORS: {get(d, 'anchors', 'haq', default='none recorded')};
{get(d, 'anchors', 'arq', default='none recorded')}.
"""]
    n_test = get(s, "settings", "test_images")
    ddpg_ca, base_ca = t.get("ddpg_cert_acc@0.25"), t.get("best_baseline_cert_acc@0.25")
    if isnum(n_test) and isnum(ddpg_ca) and isnum(base_ca) and base_ca > ddpg_ca:
        first = (s.get("budgets") or [{}])[0]
        ddpg_row = next((r for r in first.get("rows", []) if r.get("method") == "ddpg"), {})
        ci = get(ddpg_row, "test_ci", "ci95@0.25")
        ci_text = f" (DDPG's 95% interval: [{num(ci[0], '.3f')}, {num(ci[1], '.3f')}])" if isinstance(ci, list) else ""
        parts.append(f"The shortfall against {t.get('best_baseline')} is {round((base_ca - ddpg_ca) * n_test)} of "
                     f"{n_test} test images at radius 0.25{ci_text}; the verdict above is the measured comparison "
                     "as is.\n")
    pairs = t.get("paired@0.25")
    if isinstance(pairs, dict) and pairs:
        said = {"vs_float": "the float model", "vs_best_baseline": f"the best baseline ({t.get('best_baseline')})"}
        text = "; ".join(f"against {said.get(k, k)}: {v.get('only_first')} certified by DDPG only, "
                         f"{v.get('only_second')} by the other only (McNemar exact p = {num(v.get('mcnemar_exact_p'), '.2f')})"
                         for k, v in pairs.items() if isinstance(v, dict))
        parts.append(f"Paired on the same test images and noise, radius 0.25: {text}.\n")
    if s.get("search_wall_note"):
        parts.append(f"Timing: {s['search_wall_note']}.\n")
    extra = load("search_T500")
    if isinstance(extra, dict) and isinstance(extra.get("sampled"), dict):
        te = extra["sampled"].get("target") or {}
        parts.append(f"The same search tested with N = {get(extra, 'sampled', 'settings', 'test_n', default='?')} "
                     f"samples on {get(extra, 'sampled', 'settings', 'test_images', default='?')} "
                     f"test images (`results/search_T500.json`, same seeds, so the same policies): "
                     f"**{te.get('result', 'n/a')}**, DDPG {num(te.get('ddpg_cert_acc@0.25'), '.3f')}, float "
                     f"{num(te.get('float_cert_acc@0.25'), '.3f')}, best baseline {te.get('best_baseline', 'n/a')} "
                     f"{num(te.get('best_baseline_cert_acc@0.25'), '.3f')}.\n")
    for b in s.get("budgets", []):
        cost = ""
        if isnum(b.get("methods_seconds")):
            origin = ", searched by an earlier run in the same work folder" if b.get("search_from_checkpoint") else ""
            cost = f" (search: {num(b['methods_seconds'], '.0f')} s of method time, all methods{origin})"
        parts.append(f"Budget {num(b.get('budget'), 'g')} of the float BitOps{cost}:\n\n"
                     f"{_search_rows(b.get('rows', []))}\n")
    f = d.get("formal")
    if isinstance(f, dict) and "error" in f:
        parts.append(f"Part 2 (formal reward) failed: {f['error']}\n")
    elif isinstance(f, dict):
        for b in f.get("budgets", []):
            parts.append(f"Part 2, formal reward ({f.get('model', '?')}), budget {num(b.get('budget'), 'g')}:\n\n"
                         f"{_search_rows(b.get('rows', []))}\n")
    return "\n".join(parts)


REPRODUCING = """## Reproducing

```
python benchmarks/train_mnist_mlp.py            # only to rebuild the committed 784-64-64-10 model
python benchmarks/train_mnist_large.py          # only to rebuild the committed robust 1.6M model
python benchmarks/bench_casestudies.py --backends bounds,z3
python benchmarks/bench_scaling.py
python benchmarks/bench_mnist.py
python benchmarks/bench_large.py
python benchmarks/bench_soundness.py            # --quick for a short run
python benchmarks/bench_soundness.py --tier extreme
python benchmarks/bench_smoothing.py
python benchmarks/bench_search.py
python benchmarks/bench_search.py --test-n 500 --out benchmarks/results/search_T500.json
python benchmarks/bench_search_learning.py     # about 40-60 min on 2 idle cores
python benchmarks/train_int8_cnn.py && nice python benchmarks/bench_int8.py   # int8 vs float
python benchmarks/train_int8_cnn.py --penalty 3 && nice python benchmarks/bench_int8.py --variant penalized
nice python benchmarks/bench_int8.py --variant penalized --first 20   # the next 20 images, held out from the tuning
python docs/gen_benchmarks.py                   # rewrite this page from the JSON files
```

`tests/test_soundness_corpus.py` runs a fixed subset of the soundness cases (and 40 cases of
the extreme-scale tier) with small budgets in the normal test suite.
"""


def render() -> str:
    R = {n: load(n) for n in NAMES}
    sections = [
        intro(R), targets(R),
        "## a. Seed case studies (`results/casestudies.json`)\n", guarded("casestudies", casestudies, R["casestudies"]),
        "## b. Scaling (`results/scaling.json`)\n", guarded("scaling", scaling, R["scaling"]),
        "## c. MNIST 784-64-64-10, all layers (`results/mnist.json`)\n", guarded("mnist", mnist, R["mnist"]),
        "## d. 1.6M-parameter MLPs, all layers (`results/large.json`)\n", guarded("large", large, R["large"]),
        CNN.TITLE, guarded("cnn", lambda d: CNN.section(d, num, verdict, table), R["cnn"]),
        "## e. Soundness corpus (`results/soundness.json`)\n", guarded("soundness", soundness, R["soundness"]),
        "### Extreme-scale tier (`results/soundness_extreme.json`)\n",
        guarded("soundness_extreme", lambda d: soundness(d, extreme=True), R["soundness_extreme"]),
        smoothing(R),
        "## Mixed-precision search (`results/search.json`)\n", guarded("search", search, R["search"]),
        SL.TITLE, guarded("search_learning", SL.section, R["search_learning"]),
        gen_benchmarks_compress.TITLE, guarded("compress", gen_benchmarks_compress.section, load("compress")),
        "## Stochastic quantization: attacks with EOT, MI detection (`results/sq.json`)\n",
        guarded("sq", gen_benchmarks_sq.sq, R["sq"]),
        "## Scale-out on Ray (`results/ray.json`)\n", guarded("ray", gen_benchmarks_ray.ray, R["ray"]),
        "## int8 model vs float model (`results/int8.json`)\n", guarded("int8", gen_benchmarks_int8.section, R["int8"]),
        "### The same, on a CNN trained with a rounding-sensitivity penalty (`results/int8_penalized.json`)\n",
        guarded("int8_penalized", gen_benchmarks_int8.penalized, load("int8_penalized")),
        "### The penalized CNN on the next 20 images (`results/int8_penalized_from20.json`)\n",
        guarded("int8_penalized_from20", gen_benchmarks_int8.penalized, load("int8_penalized_from20")),
        "## f. Networks not trained for the verifier (`results/standard.json`)\n", guarded("standard", gen_standard.render, load("standard")),
        REPRODUCING,
    ]
    return "\n".join(s.rstrip("\n") + "\n" for s in sections)


if __name__ == "__main__":
    out = Path(__file__).with_name("benchmarks.md")
    out.write_text(render())
    print(f"wrote {out}", file=sys.stderr)
