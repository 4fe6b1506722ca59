"""The output folder policy: where a build may write, one build at a time, crash-safe.

Rules (see the README, "Output folder rules"):

- The output folder must be a folder of its own: not a file, not the project folder
  or one above it, not a folder holding an input, not inside a folder that is itself
  an input (a DEM directory).
- An existing, non-empty output folder is replaced only when the toolkit wrote it (it
  carries the :data:`MARKER` file, or a manifest whose ``generator`` is cim's).
- Builds of one output folder take a lock (``.<output>.lock`` next to it) for their
  whole run, so they never interleave.
- A build writes into ``.<output>.tmp-<pid>`` and swaps it into place; after a crash
  the next build (under the lock) removes such leftovers and, when a swap was cut
  between its two renames, puts the previous output back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cim.errors import CimError, ConfigError
from cim.manifest import FILENAME as MANIFEST
from cim.manifest import GENERATOR

log = logging.getLogger(__name__)

#: file the toolkit writes first into every folder it builds: the proof it wrote it
MARKER = ".cim-output"


def check_output(output: Path, project_file: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output folder that would overwrite or remove what cim did not write.

    Parameters
    ----------
    output : Path
        The output folder (absolute).
    project_file : Path
        The ``city.toml`` (absolute).
    inputs : iterable of Path
        Every input file or folder of the project (absolute).

    Raises
    ------
    ConfigError
        One line naming the output folder and the conflict.
    """
    output, root = output.resolve(), project_file.resolve().parent

    def refuse(why: str) -> ConfigError:
        return ConfigError(
            f"[output] dir {output} {why}; the build replaces its output folder as a "
            'whole, so it needs a folder of its own (e.g. dir = "output")',
            path=project_file,
        )

    if output.exists() and not output.is_dir():
        raise refuse("is a file")
    if root.is_relative_to(output):
        raise refuse("is or contains the project folder (city.toml)")
    for path in inputs:
        path = path.resolve()
        if path.is_relative_to(output):
            raise refuse(f"is or contains the input {path}")
        if path.is_dir() and output.is_relative_to(path):
            raise refuse(f"lies inside the input folder {path}")
    if output.is_dir():
        # a cim output never holds a project file: this is another project's folder
        projects = sorted(output.glob("*.toml"))
        if projects:
            raise refuse(f"holds a city project file ({projects[0].name})")
    if output.is_dir() and not written_by_cim(output) and any(output.iterdir()):
        raise refuse("exists, is not empty and was not written by cim (no cim manifest)")


def written_by_cim(folder: Path) -> bool:
    """Whether ``folder`` is an output (or temporary folder) the toolkit wrote."""
    if (folder / MARKER).is_file():
        return True
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("generator", "")).startswith(GENERATOR)


def lock_path(output: Path) -> Path:
    """The lock file of an output folder: ``.<name>.lock`` next to it."""
    return output.parent / f".{output.name}.lock"


@contextmanager
def output_lock(output: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold the output folder's lock (``fcntl.flock``) for the enclosed block.

    The lock file keeps the holder's pid for the error message; it is left in place
    afterwards (removing a lock file lets two processes hold two different locks).

    Parameters
    ----------
    output : Path
    wait : bool
        Wait for a build holding the lock (logged with its pid); False raises instead.

    Raises
    ------
    CimError
        ``wait=False`` and another process holds the lock.
    """
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise CimError(
                    f"another build of this output folder is running (pid {holder}, lock "
                    f"{path}); wait for it or run again without --no-wait",
                    path=output,
                ) from None
            log.info("waiting for the build of pid %s to finish (lock %s)", holder, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def try_lock(output: Path) -> int | None:
    """Take the lock without waiting: a descriptor to close, or None when it is held."""
    path = lock_path(output)
    if not path.parent.is_dir():
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


def temp_folder(output: Path) -> Path:
    """Create this process's temporary build folder next to ``output``, marked as cim's."""
    work = output.parent / f".{output.name}.tmp-{os.getpid()}"
    if work.exists():  # our own pid's leftover: we hold the lock, so it is cim's
        _remove_ours(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text(f"{GENERATOR}\n", encoding="utf-8")
    return work


def leftovers(output: Path) -> tuple[list[Path], list[Path]]:
    """Temporary (``.tmp-*``) and previous (``.old-*``) folders of ``output`` on disk."""
    parent, stem = output.parent, f".{output.name}."
    if not parent.is_dir():
        return [], []
    tmp = sorted(parent.glob(f"{_glob_escape(stem)}tmp-*"))
    old = sorted(parent.glob(f"{_glob_escape(stem)}old-*"), key=_mtime, reverse=True)
    return [p for p in tmp if p.is_dir()], [p for p in old if p.is_dir()]


def build_paths(output: Path) -> list[Path]:
    """Everything builds of ``output`` have put on disk: the folder, its lock, leftovers.

    What a project folder holds besides its inputs after builds (for checks that the
    inputs were not touched, and for tools that copy a project without its outputs).
    """
    tmp, old = leftovers(output)
    return [p for p in (output, lock_path(output)) if p.exists()] + tmp + old


def recover(output: Path) -> list[str]:
    """Repair what killed builds left; call it holding the lock.

    When the output folder is missing and a previous output (``.old-*``) exists, a
    swap was cut between its renames: the newest previous output is put back. Then
    every leftover temporary or previous folder the toolkit wrote is removed (a folder
    without cim's marker or manifest is left alone and logged).

    Returns
    -------
    list of str
        What was done, one line per action (also logged).
    """
    done: list[str] = []
    tmp, old = leftovers(output)
    if not output.exists():
        for candidate in old:
            if written_by_cim(candidate):
                candidate.rename(output)
                old.remove(candidate)
                done.append(f"restored the previous output from {candidate.name}")
                break
    for folder in tmp + old:
        if written_by_cim(folder) or not any(folder.iterdir()):  # empty: killed at mkdir
            _remove_ours(folder)
            done.append(f"removed {folder.name}, left by a build that did not finish")
        else:
            log.warning("left alone: %s (not written by cim)", folder)
    for line in done:
        log.info("%s: %s", output.name, line)
    return done


def readable_output(output: Path) -> Path:
    """The folder to read a build from, also while a cut swap awaits recovery.

    Recovers first when no build holds the lock; when one does (it will recover
    itself), falls back to the previous output of a cut swap. Writes nothing (not even
    the lock file) when there is nothing to recover.
    """
    tmp, old = leftovers(output)
    if not tmp and not old:
        return output
    fd = try_lock(output)
    if fd is not None:
        try:
            recover(output)
        except OSError as exc:  # a read-only location: reading still works
            log.debug("recovery of %s skipped: %s", output, exc)
        finally:
            os.close(fd)
    if output.is_dir():
        return output
    _, old = leftovers(output)
    ours = [p for p in old if written_by_cim(p)]
    return ours[0] if ours else output


def swap(work: Path, output: Path, *, remove: bool = True) -> Path | None:
    """Put the finished build ``work`` in place of ``output``.

    On Linux both names are exchanged in one atomic ``renameat2(RENAME_EXCHANGE)``, so
    the output folder never disappears, not even for a moment; elsewhere the old output
    is renamed to ``.<name>.old-<pid>`` and the new one renamed in (a crash between the
    two is repaired by :func:`recover`). The previous output is removed last.

    Parameters
    ----------
    work, output : Path
    remove : bool
        Remove the previous output here (True), or leave it to the caller, who may
        remove it while doing other work (:func:`remove_in_background`).

    Returns
    -------
    Path or None
        With ``remove=False``, the folder now holding the previous output: a leftover
        of this build (``.tmp-<pid>`` or ``.old-<pid>``) that :func:`recover` removes
        should this process die first. None when there was none, or it was removed.
    """
    if output.exists() and _exchange(work, output):
        previous: Path | None = work  # now holds the previous output
    else:
        previous = output.parent / f".{output.name}.old-{os.getpid()}"
        if output.exists():
            output.rename(previous)
        else:
            previous = None
        work.rename(output)
    if previous is not None and remove:
        _remove_ours(previous)
        return None
    return previous


def remove_in_background(folder: Path | None) -> Callable[[], None]:
    """Start removing a previous output (from :func:`swap`) on a thread; return a join.

    Removing a large tileset is mostly the kernel freeing its blocks: on a thread it
    overlaps what the build does after the swap (closing the worker pool, freeing its
    memory) instead of following it. Call the returned function before the output
    lock is released; it re-raises the removal's error. Should the process die first,
    the folder is a leftover the next build removes (:func:`recover`): the marker
    files go last, so a half-removed folder is still recognisably cim's.
    """
    if folder is None:
        return lambda: None
    errors: list[BaseException] = []

    def remove() -> None:
        try:
            _remove_ours(folder)
        except BaseException as exc:  # re-raised by join(), in the build's thread
            errors.append(exc)

    thread = threading.Thread(target=remove, name="cim-remove-previous")
    thread.start()

    def join() -> None:
        thread.join()
        if errors:
            raise errors[0]

    return join


def discard(folder: Path) -> None:
    """Remove a failed build's temporary folder; one cim did not write is left and logged."""
    if not folder.exists():
        return
    try:
        _remove_ours(folder)
    except CimError as exc:
        log.warning("%s", exc)
    except OSError as exc:
        log.warning("%s: could not be removed (%s)", folder, exc)


def _remove_ours(folder: Path) -> None:
    """Remove a folder the toolkit wrote (its marker or manifest checked once more)."""
    if any(folder.iterdir()) and not written_by_cim(folder):
        raise CimError("refusing to remove a folder cim did not write", path=folder)
    # the files that prove the folder is cim's go last: a removal cut short leaves a
    # folder that recover() still recognises and removes, instead of one it must keep
    proofs = (MARKER, MANIFEST)
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name in proofs:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    for name in proofs:
        (folder / name).unlink(missing_ok=True)
    folder.rmdir()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False when unsupported."""
    func = _renameat2()
    if func is None:
        return False
    rc = func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # kernel or filesystem without exchange: the two-rename path
    raise OSError(err, os.strerror(err), str(b))


@functools.cache
def _renameat2() -> Any:
    """libc's ``renameat2`` as a ctypes function, or None (not glibc ≥ 2.28, not Linux)."""
    name = ctypes.util.find_library("c")
    func = getattr(ctypes.CDLL(name, use_errno=True), "renameat2", None) if name else None
    if func is not None:
        func.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]
        func.restype = ctypes.c_int
    return func


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
