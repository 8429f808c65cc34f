"""An interrupted run prints what it proved so far AND exits 130 (docs/cli.md, exit codes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "paramverify" / "casestudies" / "data" / "ath_relu.onnx"
PROBLEM = ["--delta", "0.01", "--domain", "148.9:209.4,37.8:123.2", "--tolerance", "1e-13", "--timeout", "120", "--json"]


def _interrupt(argv: list[str], signum: int) -> tuple[int, dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "paramverify.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in proc.stderr:  # wait until the branch and bound is under way
            if "max epsilon" in line or time.monotonic() > deadline:
                break
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, json.loads(out)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_bound_reports_its_bracket_and_exits_130(signum):
    code, result = _interrupt(["bound", str(MODEL), "--property", "eps", *PROBLEM], signum)
    assert code == 130
    assert result["complete"] is False and "interrupted" in result["note"]
    assert result["lower"] <= 0.10782816 and result["upper"] >= 0.10782724  # still a proved bracket


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_interrupted_verify_reports_unknown_and_exits_130():
    # E inside the proved bracket [0.1078272, 0.1078274]: neither proof nor refutation comes quickly
    code, result = _interrupt(["verify", str(MODEL), "--property", "eps", "--epsilon", "0.10782731", *PROBLEM],
                              signal.SIGINT)
    assert code == 130
    assert result["verdict"] == "unknown" and "interrupted" in result["reason"]
