"""Regenerate docs/cli.md from the parser itself: `python docs/gen_cli.py`.

tests/test_docs.py fails when docs/cli.md and the parser disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paramverify.cli import build_parser

INTRO = """# Command-line reference

Generated from the parser by `python docs/gen_cli.py`; `tests/test_docs.py` checks that it
matches the code. Every command takes `--json` (one JSON object on stdout; progress goes
to stderr), `--quiet` and `--debug`.

Exit codes: 0 verified or bound found, 1 falsified, 3 unknown, 2 usage or input error (one
line on stderr naming the field and the fix; a traceback only with `--debug`), 4 internal
error (a bug), 130 interrupted. Ctrl-C or SIGTERM (`kill`, a scheduler's time limit) stops
a long command: it still prints what it proved so far (`bound`: the bracket, marked
`complete: false` with a note saying "interrupted"; `verify`: `unknown` with reason
"interrupted") and then exits 130, so a script can tell a cut-short run from a finished
one. Negative values may follow a flag with a space or with '=': `--x0 -0.3,1` and
`--x0=-0.3,1` are the same.

## Interrupts, timeouts and output files

- **SIGINT / SIGTERM.** Every command stops within about 2 s of the first signal and keeps
  what it finished: `bound` and `verify` print the bracket or verdict proved so far
  (`complete: false`, `note`/`reason` says `interrupted`; for `bound --property sigma` the
  classes not started get the trivial bracket [0, inf]); `bits` reports the widths
  certified so far; `smooth certify`/`predict` report (and write to `--tsv`/`--plot`) the
  inputs finished so far, with `complete: false` and `missing` (the indices not done);
  `compare` and `reproduce` write their JSON with `complete: false` and the missing
  queries; `search` keeps its checkpoint. The exit code is then 130 (1 stays 1 when a
  replayed counterexample was found). A running z3 query is cancelled; a dReal query's
  child process is killed. Further signals never interrupt the reporting: the output is
  still written (two SIGTERMs give the same result and exit 130).
- **`--timeout`** is the wall-clock budget of the whole command, counted from its start
  (imports and model loading included, with a short reserve for the report), so a run
  ends within about 2 s of it. `bound --property sigma` shares one budget among the
  classes (each gets an equal share of what is left; once it is spent, the classes left
  get only the engine's first bound). In `bits`, `--timeout` is the budget
  of one query and `--budget` of the whole search; no query runs past `--budget`.
- **Output files** (`export-smt -o`, `compare`'s `compare.json` and report, `report -o`,
  `reproduce`'s `results.json` and figures, `smooth --tsv/--plot`, `search` outputs and
  checkpoints) are written atomically: to a temporary file in the same folder, then
  renamed over the target, so an interrupted write leaves the earlier file intact, never
  a truncated one. Output paths are checked before the work starts: a missing or
  unwritable folder is a usage error (exit 2) at once, not after a long run.
- **Out of memory** is one line on stderr and exit 2 (a traceback only with `--debug`).

## JSON fields

Every JSON object a command writes (on stdout with `--json`, and the files `reproduce`,
`compare`, `search` and `smooth`'s data-set helpers write) has `schema`: the version of its
layout, now 1. It is raised when a field is removed or changes meaning; new fields keep it.

- **bound**: `command`, `property`, `model`, `backend`, `region` (`x0` or `domain`), `box`
  (`description`, `parameters`, `n_parameters`), `quantity` (`max_epsilon`, `min_sigma`,
  `max_delta`), `lower`, `upper`, `gap`, `time_s`, `method` (what proved it),
  `proof_side` (`upper` or `lower`: which end is proved), `complete` (false when the run
  stopped at its timeout or was interrupted), `witness` (a point object, below), `note`;
  `per_class` for sigma (each with its own `witness`); `output` (`tensor`, `note`) when the
  property is not stated on the model's own output (a classifier head or a final softmax
  skipped, or `--output NAME`).
- **verify**: `command`, `property`, `model`, `backend`, `region`, `box`, `verdict`
  (`verified`, `falsified`, `unknown`), `method`, `time_s`; `reason` when unknown;
  `counterexample` (a point object) when falsified; `output` as for bound.
  With `--quantized` an onnxruntime int8 model,
  `box.description` names it (`int8 model 'q.onnx' (QDQ; 5 activation roundings)`) and
  `parameters` lists the dequantized weights and `__int8_enable` (the rounding switch);
  an `unknown` label agreement whose float label is proved constant adds `int8_margin`
  (`class`, `proved_at_least`, `lowest_found`, `pieces`: the int8 margin's bracket, docs/int8.md).
  With `--vnnlib`: `command`, `property` (`vnnlib`), `vnnlib`, `model`, `vnncomp` (`sat`,
  `unsat`, `timeout`, `unknown`) and the verdict fields.
- **vnncomp**: `command`, `instances` (per instance `onnx`, `vnnlib`, `result`, `time_s`,
  `file`); see docs/vnnlib.md.
- **point objects** (`witness`, `counterexample`): `input` (list), `parameters`
  (initializer name -> nested list in the initializer's shape), `nominal_output` and
  `perturbed_output` (float64 evaluation), `replayed_on_onnxruntime` (always true: every
  witness and counterexample is run on onnxruntime before it is reported; a counterexample
  only counts when onnxruntime shows the violation too), `onnxruntime_nominal_output`,
  `onnxruntime_perturbed_output`, `note`. When the perturbed parameters hold more than
  10,000 values, `parameters` is replaced by `parameters_file` (an `.npz` next to the run:
  `--witness-file`, default `MODEL-stem.COMMAND-PROPERTY.witness.npz` in the working
  directory, `.classC` added per sigma class; `numpy.load` gives `input` and
  `param/NAME` arrays, the exact replayed values), `parameters_sha256`, and
  `changed_parameters` (per initializer `count` of entries that differ from the nominal
  value and `size`; with their flat `index` and `value` lists when all changed entries
  together are at most 10,000).
- **export-smt** (with `-o` and `--json`): `command`, `output`, `bytes`.
- **verify / bound over a data set** (`--x0 FILE.npy` with N >= 2 rows): `command`,
  `property`, `model`, `backend`, `inputs` (N), `finished`, `time_s`, `workers`,
  `ray_address`, `results` (one object per row in input order: `index` plus the fields of
  a single verify/bound result without `region`/`box`; `verdict: not-run` for rows an
  interrupt or a lost cluster left undone), `summary` (verify: counts per verdict),
  `stopped` (why the run ended early, when it did). Exit code: 1 if any row is falsified,
  else 3 if any is unknown, else 0; 130 when interrupted, 3 when the Ray cluster was lost.
  With `--workers N` / `--ray-address ADDR` (optional `.[ray]` extra) each row is a Ray
  task; see docs/scaling.md.
- **reproduce**: `cells` (one bound object per Table 1 cell, with `study`, `delta`,
  `class`, `gap_target`, `meets_gap_target`), `figures`, `all_gap_targets_met`, `time_s`,
  `complete` (false when interrupted: the cells finished so far, no figures) and
  `missing_cells`.
- **smooth, compare, bits, search**: see docs/smoothing.md, docs/compare.md, docs/bits.md
  and docs/search.md. **attack, sq**: see docs/sq.md. `report` writes HTML only. `search`'s `checkpoint.json` is internal
  state with its own format version (`fingerprint.version`).

A model whose weights hold NaN or infinity, or whose outputs are not finite on the input
region (an overflow), is an input error (exit 2): no bound or verdict is given about it.
"""


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def render() -> str:
    parser = build_parser()
    parts = [INTRO, "## paramverify\n", "```text", parser.format_help().rstrip(), "```\n"]
    for name, sub in _subparsers(parser):
        parts += [f"## paramverify {name}\n", "```text", sub.format_help().rstrip(), "```\n"]
        for sname, ssub in _subparsers(sub):
            parts += [f"### paramverify {name} {sname}\n", "```text", ssub.format_help().rstrip(), "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    out = Path(__file__).with_name("cli.md")
    out.write_text(render())
    print(f"wrote {out}", file=sys.stderr)
