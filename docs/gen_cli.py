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
  `nominal_output`, `perturbed_output`), `note`; `per_class` for sigma.
- **verify**: `command`, `property`, `model`, `backend`, `region`, `box`, `verdict`
  (`verified`, `falsified`, `unknown`), `method`, `time_s`; `reason` when unknown;
  `counterexample` (`input` list, `parameters`: initializer name -> nested list in the
  initializer's shape, `nominal_output`, `perturbed_output`, `replayed_on_onnxruntime`)
  when falsified.
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
