"""files.Transaction: all outputs of one command, or none."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from backdoors.artifacts import files
from backdoors.errors import InvalidInputError


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_commit_writes_every_output_with_its_mode(tmp_path):
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "old.txt").write_text("old")
    with files.Transaction() as tx:
        tx.file(tmp_path / "k.json", mode=0o600, overwrite=False)
        staged = tx.folder(tmp_path / "rep")
        new = tx.folder(tmp_path / "fresh")
        tx.save_array(tmp_path / "a.npy", np.arange(3))
        tx.write_bytes(tmp_path / "k.json", b"{}")
        (staged / "report.md").write_text("hi")
        (new / "sub").mkdir()
        (new / "sub" / "x.png").write_bytes(b"png")
        assert not (tmp_path / "a.npy").exists()  # nothing visible before the commit
        assert tx.final(new / "sub" / "x.png") == tmp_path / "fresh" / "sub" / "x.png"
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.arange(3))
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600
    assert (tmp_path / "rep" / "report.md").read_text() == "hi"
    assert (tmp_path / "rep" / "old.txt").read_text() == "old"
    assert (tmp_path / "fresh" / "sub" / "x.png").read_bytes() == b"png"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o777 & ~umask
    assert _listing(tmp_path) == sorted(
        ["a.npy", "k.json", "rep", "rep/old.txt", "rep/report.md", "fresh", "fresh/sub",
         "fresh/sub/x.png"]
    )  # fmt: skip


def test_failure_during_work_leaves_nothing(tmp_path):
    (tmp_path / "keep.npy").write_bytes(b"old")
    with pytest.raises(RuntimeError), files.Transaction() as tx:
        tx.write_bytes(tmp_path / "keep.npy", b"new")
        tx.folder(tmp_path / "out")
        raise RuntimeError("work failed")
    assert _listing(tmp_path) == ["keep.npy"]
    assert (tmp_path / "keep.npy").read_bytes() == b"old"


def test_failed_rename_rolls_back_the_ones_already_done(tmp_path, monkeypatch):
    (tmp_path / "m.st").write_bytes(b"old model")
    real_link = os.link

    def link(src, dst, *a, **kw):  # the key's final link fails like a full disk would
        if str(dst).endswith("bd.key"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(OSError), files.Transaction() as tx:
        tx.write_bytes(tmp_path / "m.st", b"new model")
        tx.file(tmp_path / "bd.key", mode=0o600, overwrite=False)
        tx.write_bytes(tmp_path / "bd.key", b"secret")
    assert _listing(tmp_path) == ["m.st"]
    assert (tmp_path / "m.st").read_bytes() == b"old model"


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p / "missing" / "x.npy",  # folder does not exist
        lambda p: p / "file.txt" / "x.npy",  # "folder" is a regular file
        lambda p: p,  # output is an existing folder
    ],
)
def test_bad_destinations_fail_at_reservation(tmp_path, make):
    (tmp_path / "file.txt").write_text("x")
    tx = files.Transaction()
    with pytest.raises(InvalidInputError):
        tx.file(make(tmp_path))
    assert _listing(tmp_path) == ["file.txt"]


def test_unwritable_folder_fails_at_reservation(tmp_path, monkeypatch):
    import tempfile

    def mkstemp(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(files.OutputError, match="Permission denied"):
        files.Transaction().file(tmp_path / "x.npy")


def test_overlapping_and_duplicate_outputs_refused(tmp_path):
    tx = files.Transaction()
    tx.folder(tmp_path / "out")
    with pytest.raises(InvalidInputError):
        tx.file(tmp_path / "out" / "x.json")
    with pytest.raises(InvalidInputError):
        tx.folder(tmp_path / "out")
    tx.abort()
    assert _listing(tmp_path) == []


def test_existing_key_never_overwritten(tmp_path):
    (tmp_path / "bd.key").write_text("mine")
    with pytest.raises(InvalidInputError):
        files.Transaction().file(tmp_path / "bd.key", mode=0o600, overwrite=False)
    assert (tmp_path / "bd.key").read_text() == "mine"


def test_failed_replace_of_an_existing_file_restores_it(tmp_path, monkeypatch):
    (tmp_path / "r.md").write_bytes(b"old report")
    real_replace = os.replace

    def replace(src, dst, *a, **kw):
        if str(dst).endswith("r.md") and str(src).endswith(".tmp"):
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError), files.Transaction() as tx:
        tx.write_bytes(tmp_path / "r.md", b"new report")
    assert _listing(tmp_path) == ["r.md"]  # no backup or temporary left
    assert (tmp_path / "r.md").read_bytes() == b"old report"


def test_without_hard_links_commit_still_works(tmp_path, monkeypatch):
    def no_links(*a, **kw):
        raise OSError(errno.EPERM, "Operation not permitted")

    (tmp_path / "m.st").write_bytes(b"old")
    monkeypatch.setattr(os, "link", no_links)
    with files.Transaction() as tx:
        tx.write_bytes(tmp_path / "m.st", b"new")
        tx.file(tmp_path / "k.key", mode=0o600, overwrite=False)
        tx.write_bytes(tmp_path / "k.key", b"secret")
    assert (tmp_path / "m.st").read_bytes() == b"new"
    assert (tmp_path / "k.key").read_bytes() == b"secret"
    assert _listing(tmp_path) == ["k.key", "m.st"]
