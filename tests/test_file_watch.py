"""inotify through ctypes: the files of a directory written, created, renamed and removed are named; a directory that cannot be watched is an OSError."""

from __future__ import annotations

import os

import pytest

from console.file_watch import DirectoryWatch


def test_a_directory_s_files_written_created_renamed_and_removed_are_named(tmp_path):
    (tmp_path / "old.jsonl").write_text("")
    watch = DirectoryWatch([tmp_path])
    try:
        assert watch.changes().paths == set(), "nothing written yet"
        with (tmp_path / "old.jsonl").open("a") as journal:
            journal.write("{}\n")
        (tmp_path / "new.jsonl").write_text("{}\n")
        os.rename(tmp_path / "new.jsonl", tmp_path / "moved.jsonl")
        (tmp_path / "old.jsonl").unlink()
        changes = watch.changes()
        assert changes.paths == {tmp_path / name for name in ("old.jsonl", "new.jsonl", "moved.jsonl")} and not changes.overflowed
        assert watch.changes().paths == set(), "each notice is told once"
    finally:
        watch.close()


def test_a_directory_that_cannot_be_watched_is_an_os_error(tmp_path):
    with pytest.raises(OSError, match="inotify_add_watch .*missing"):
        DirectoryWatch([tmp_path, tmp_path / "missing"])
