"""paramverify/memory.py: glibc's malloc told to keep freed memory (the program and Ray's workers)."""

from __future__ import annotations

import platform
import sys

import pytest

from paramverify import cli, memory
from paramverify.distributed.runtime import WORKER_ENV


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_settings_apply_on_glibc():
    assert memory.keep_freed_memory() is True


def test_workers_get_the_same_settings_as_the_program():
    assert dict(WORKER_ENV) == {"MALLOC_TRIM_THRESHOLD_": str(memory.TRIM_THRESHOLD),
                                "MALLOC_MMAP_THRESHOLD_": str(memory.MMAP_THRESHOLD)}


def test_only_the_program_changes_its_own_process(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(sys, "argv", ["paramverify"])
    assert cli.main() == 2 and calls == [1]  # run as a program (argv from sys.argv)
    assert cli.main([]) == 2 and calls == [1]  # called from Python: the caller's process is left alone
    capsys.readouterr()
