"""All outputs of one command, or none: a write transaction over files and folders.

Usage (every CLI command that writes files does this)::

    with Transaction() as tx:
        tx.file(model_path)                 # checks + reserves now, before the expensive work
        tx.file(key_path, mode=0o600, overwrite=False)
        staged = tx.folder(report_dir)      # a staging folder to write a whole tree into
        ...expensive work...
        tx.write_bytes(model_path, data)    # or tx.path(p) for writers that want a file name
    # leaving the block commits: fsync, then rename every output into place;
    # an exception anywhere removes every temporary and leaves no output (old files restored).

Rules: the folder that holds an output must already exist (output folders are created one
level deep, never a whole tree); an output may not be an existing folder (nor a file, for a
folder output); reserving a temporary in the target folder proves it is writable before any
work is done. Writing into a full disk fails at write time and still leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from backdoors.errors import InvalidInputError

__all__ = ["OutputError", "Transaction"]


class OutputError(InvalidInputError):
    """An output that cannot be written where the user asked (missing folder, not writable)."""


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reserve_file(path: Path, mode: int) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, mode)
    return Path(tmp)


def _link_or_move(path: Path, backup: Path) -> None:
    """Keep the old version of ``path`` as ``backup`` (hard link; a move where the file
    system has no hard links: the commit replaces ``path`` next anyway)."""
    try:
        os.link(path, backup)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        os.replace(path, backup)


def _restore(backup: Path, dst: Path) -> None:
    """Put ``backup`` back at ``dst`` (rename is a no-op between two links of one file)."""
    with contextlib.suppress(OSError):
        if dst.exists() and os.path.samefile(backup, dst):
            os.unlink(backup)
        else:
            os.replace(backup, dst)


def _link_new(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` only if ``dst`` does not exist (atomic with hard links)."""
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(dst)) from None
        os.replace(src, dst)
        return
    os.unlink(src)


class Transaction:
    """Stage every output of one command in temporaries beside its target; commit or roll back.

    Files: ``file(path)`` reserves a temporary in ``path``'s folder; write it with
    :meth:`write_bytes` (or let any writer fill :meth:`path`). Folders: ``folder(path)``
    returns a staging folder; on commit it becomes ``path`` (or its files are moved into an
    existing ``path``). Commit renames everything; if one rename fails, the ones already done
    are undone (replaced files are restored from hard-link backups)."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[Path, int, bool]] = {}  # final -> (tmp, mode, overwrite)
        self._folders: dict[Path, Path] = {}  # final -> staging folder
        self._done = False

    # ---------------------------------------------------------------- reservation (checks)
    def _check_new(self, path: Path) -> Path:
        path = Path(os.path.abspath(path))
        if path in self._files or path in self._folders:
            raise OutputError(f"{path} is given as two outputs")
        for other in (*self._files, *self._folders):
            if path in other.parents or other in path.parents:
                raise OutputError(f"outputs {other} and {path} overlap")
        parent = path.parent
        if not parent.exists():
            raise OutputError(f"folder {parent} does not exist (create it first)")
        if not parent.is_dir():
            raise OutputError(f"{parent} is not a folder")
        return path

    def file(
        self,
        path: str | os.PathLike,
        *,
        mode: int = 0o644,
        overwrite: bool = True,
        suffixes: tuple[str, ...] | None = None,
        refuse_suffixes: tuple[str, ...] = (),
    ) -> Path:
        """Reserve the output file ``path`` now (checks it can be written); return its
        temporary. ``overwrite=False`` refuses an existing file (keys); ``suffixes`` restricts
        the file name's suffix (e.g. ``(".npy", ".npz")``), ``refuse_suffixes`` forbids some
        (a model written as ``x.skops`` would be read back as skops)."""
        final = self._check_new(Path(path))
        if suffixes is not None and final.suffix not in suffixes:
            raise OutputError(f"{path}: the output must end in {' or '.join(suffixes)}")
        if final.suffix in refuse_suffixes:
            raise OutputError(f"{path}: a {final.suffix} name would not match what is written")
        if final.is_dir():
            raise OutputError(f"{path} is a folder")
        if final.exists() and not overwrite:
            raise OutputError(f"{path} exists; refusing to overwrite it")
        try:
            tmp = _reserve_file(final, mode)
        except OSError as exc:
            raise OutputError(f"cannot write into {final.parent}: {_describe(exc)}") from None
        self._files[final] = (tmp, mode, overwrite)
        return tmp

    def folder(self, path: str | os.PathLike) -> Path:
        """Reserve the output folder ``path`` (created one level deep if missing); return the
        staging folder to write its files into."""
        final = self._check_new(Path(path))
        if final.exists() and not final.is_dir():
            raise OutputError(f"{path} exists and is not a folder")
        where = final if final.is_dir() else final.parent
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=where))
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would become the folder's
        except OSError as exc:
            raise OutputError(f"cannot write into {where}: {_describe(exc)}") from None
        self._folders[final] = staging
        return staging

    def discard(self, path: str | os.PathLike) -> None:
        """Give up the reserved output folder ``path``: it is not created (nor changed)."""
        final = Path(os.path.abspath(path))
        staging = self._folders.pop(final, None)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    # ---------------------------------------------------------------- writing
    def path(self, path: str | os.PathLike) -> Path:
        """The temporary that will become the reserved output ``path``."""
        final = Path(os.path.abspath(path))
        if final not in self._files:
            raise KeyError(f"{path} was not reserved in this transaction")
        return self._files[final][0]

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> Path:
        """Write ``data`` into the reserved output ``path`` (reserving it if needed)."""
        if Path(os.path.abspath(path)) not in self._files:
            self.file(path)
        tmp = self.path(path)
        with open(tmp, "wb") as fh:
            fh.write(data)
        return Path(path)

    def write_text(self, path: str | os.PathLike, text: str) -> Path:
        return self.write_bytes(path, text.encode())

    def final(self, staged: str | os.PathLike) -> Path:
        """Map a path inside a staging folder (or a file temporary) to its final name."""
        p = Path(os.path.abspath(staged))
        for final, staging in self._folders.items():
            if p == staging or staging in p.parents:
                return final / p.relative_to(staging)
        for final, (tmp, _, _) in self._files.items():
            if p == tmp:
                return final
        return p

    # ---------------------------------------------------------------- commit / abort
    def _moves(self) -> list[tuple[Path, Path, bool]]:
        """(source, destination, overwrite) for every file; new folders move as a whole."""
        moves = [(tmp, final, ow) for final, (tmp, _, ow) in self._files.items()]
        for final, staging in self._folders.items():
            if not final.exists():
                moves.append((staging, final, False))
                continue
            for src in sorted(staging.rglob("*")):
                if src.is_file() or src.is_symlink():
                    moves.append((src, final / src.relative_to(staging), True))
        return moves

    def commit(self) -> None:
        """fsync every temporary, then rename all into place (undo all if one rename fails)."""
        if self._done:
            return
        moves = self._moves()
        for src, _, _ in moves:
            for f in [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]:
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        done: list[tuple[Path, Path, Path | None]] = []  # (src, dst, backup of old dst)
        try:
            for src, dst, overwrite in moves:
                backup = None
                if overwrite and dst.exists():
                    backup = dst.with_name(f".{dst.name}.{os.getpid()}.bak")
                    _link_or_move(dst, backup)
                try:
                    dst.parent.mkdir(parents=True, exist_ok=True)  # subfolders of a tree
                    if overwrite:
                        os.replace(src, dst)
                    elif src.is_dir():
                        os.rename(src, dst)
                    else:
                        _link_new(src, dst)  # never clobber a file (a key) that appeared
                except BaseException:
                    if backup is not None:  # this move failed: the old file goes back
                        _restore(backup, dst)
                    raise
                done.append((src, dst, backup))
        except BaseException:
            self._undo(done)
            self.abort()
            raise
        for _, _, backup in done:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
        for d in {dst.parent for _, dst, _ in moves} | set(self._folders):
            with contextlib.suppress(OSError):
                fd = os.open(d, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        self._cleanup()
        self._done = True

    @staticmethod
    def _undo(done: list[tuple[Path, Path, Path | None]]) -> None:
        """Put back what a failed commit already moved (best effort: renames rarely fail)."""
        for src, dst, backup in reversed(done):
            with contextlib.suppress(OSError):
                os.replace(dst, src)  # back to the temporary, removed by abort()
            if backup is not None:
                _restore(backup, dst)

    def _cleanup(self) -> None:
        for tmp, _, _ in self._files.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        for staging in self._folders.values():
            shutil.rmtree(staging, ignore_errors=True)

    def abort(self) -> None:
        """Remove every temporary; leave every output as it was."""
        self._cleanup()
        self._done = True

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
