"""Writing result files safely: atomically, and to a place checked before the work starts.

Every file the library or the CLI writes as a result goes through :func:`atomic_path`
(or its shorthands): the content is written to a temporary file in the same folder and
moved over the target with :func:`os.replace`, so a run killed mid-write leaves either
the earlier file or the new one, never a truncated file.  :func:`check_output_path`
lets a command reject an unwritable output path *before* a long run instead of losing
the run at its very end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paramverify.errors import SpecError

PathLike = str | os.PathLike[str]


def check_output_path(path: PathLike | None, field: str, *, create_parent: bool = False) -> None:
    """Raise :class:`SpecError` unless ``path`` can be written: its folder exists (or, with
    ``create_parent``, can be created) and is writable, and ``path`` is not a folder."""
    if path is None:
        return
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise SpecError(field, f"'{path}' is a folder, not a file", "give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    _check_folder(parent, field, create_parent)
    if p.exists() and not os.access(p, os.W_OK) and not os.access(parent, os.W_OK):
        raise SpecError(field, f"'{path}' is not writable", "choose another file")


def check_output_folder(folder: PathLike, field: str) -> None:
    """Raise :class:`SpecError` unless ``folder`` exists and is writable or can be created."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise SpecError(field, f"'{folder}' exists and is not a folder", "give a folder path")
    _check_folder(p, field, True)


def _check_folder(folder: Path, field: str, create: bool) -> None:
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SpecError(field, f"folder '{folder}' is not writable", "choose a writable folder")
        return
    if not create:
        raise SpecError(field, f"folder '{folder}' does not exist", "create it first or choose an existing folder")
    # the folder would be created: its nearest existing ancestor must be a writable folder
    anc = folder
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir() or not os.access(anc, os.W_OK | os.X_OK):
        raise SpecError(field, f"cannot create folder '{folder}' ('{anc}' is not a writable folder)",
                        "choose a writable location")


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` atomically.

    On any exception (a signal included) the temporary file is removed and ``path`` keeps
    its earlier content.  ``suffix`` (default: ``path``'s own) keeps writers that look at
    the extension (matplotlib, numpy) happy.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    tmp = _new_temp(folder, target.name, target.suffix if suffix is None else suffix)
    try:
        yield tmp
        _fsync(tmp)
        with contextlib.suppress(OSError):  # keep an existing file's permissions
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_json(path: PathLike, obj: Any, **dumps: Any) -> None:
    """Serialise ``obj`` first (a failure leaves ``path`` untouched), then write it atomically."""
    write_text(path, json.dumps(obj, **dumps) + "\n")


def _fsync(path: str) -> None:
    with contextlib.suppress(OSError), open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _new_temp(folder: Path, name: str, suffix: str) -> str:
    """Create an empty, not yet used file ``.NAME.XXXX.tmpSUFFIX`` in ``folder`` (mode 0o666 & ~umask)."""
    for _ in range(100):
        tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(f"cannot create a temporary file in {folder}")
