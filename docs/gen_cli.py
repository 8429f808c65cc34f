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
line on stderr naming the field and the fix; a traceback only with `--debug`), 130
interrupted. SIGTERM (`kill`, a scheduler's time limit) is treated like Ctrl-C: long
commands report what they proved so far, marked incomplete.

## JSON fields

- **bound**: `command`, `property`, `model`, `backend`, `region` (`x0` or `domain`), `box`
  (`description`, `parameters`, `n_parameters`), `quantity` (`max_epsilon`, `min_sigma`,
  `max_delta`), `lower`, `upper`, `gap`, `time_s`, `method` (what proved it),
  `proof_side` (`upper` or `lower`: which end is proved), `complete` (false when the run
  stopped at its timeout or was interrupted), `witness` (`input`, `parameters`,
  `nominal_output`, `perturbed_output`), `note`; `per_class` for sigma; `output`
  (`tensor`, `note`) when the property is not stated on the model's own output (a
  classifier head or a final softmax skipped, or `--output NAME`).
- **verify**: `command`, `property`, `model`, `backend`, `region`, `box`, `verdict`
  (`verified`, `falsified`, `unknown`), `method`, `time_s`; `reason` when unknown;
  `counterexample` (`input` list, `parameters`: initializer name -> nested list in the
  initializer's shape, `nominal_output`, `perturbed_output`, `replayed_on_onnxruntime`)
  when falsified; `output` as for bound. With `--quantized` an onnxruntime int8 model,
  `box.description` names it (`int8 model 'q.onnx' (QDQ; 5 activation roundings)`) and
  `parameters` lists the dequantized weights and `__int8_enable` (the rounding switch).
  With `--vnnlib`: `command`, `property` (`vnnlib`), `vnnlib`, `model`, `vnncomp` (`sat`,
  `unsat`, `timeout`, `unknown`) and the verdict fields. With `--x0 FILE.npy` of several
  rows: `command`, `property`, `model`, `rows` (one verdict object per row, with `row`).
- **vnncomp**: `command`, `instances` (per instance `onnx`, `vnnlib`, `result`, `time_s`,
  `file`); see docs/vnnlib.md.
- **reproduce**: `cells` (one bound object per Table 1 cell, with `study`, `delta`,
  `class`, `gap_target`, `meets_gap_target`), `figures`, `all_gap_targets_met`, `time_s`.
- **smooth, compare, bits, search**: see docs/smoothing.md, docs/compare.md, docs/bits.md
  and docs/search.md. `report` writes HTML only.
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
