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
- **reproduce**: `cells` (one bound object per Table 1 cell, with `study`, `delta`,
  `class`, `gap_target`, `meets_gap_target`), `figures`, `all_gap_targets_met`, `time_s`.
- **smooth, compare, bits, search**: see docs/smoothing.md, docs/compare.md, docs/bits.md
  and docs/search.md. `report` writes HTML only. `search`'s `checkpoint.json` is internal
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
