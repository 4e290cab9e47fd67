"""Atomic writes: a finished write replaces the target in one step; a failed one leaves it untouched."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.io import atomic_path, atomic_write_text


def test_a_file_is_replaced_only_when_the_write_finishes(tmp_path):
    target = tmp_path / "plan.json"
    atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_the_temporary_name_keeps_the_suffix_for_writers_that_add_one(tmp_path):
    with atomic_path(tmp_path / "vectors.npy") as tmp:
        assert tmp.suffix == ".npy"
        np.save(tmp, np.ones(3))  # np.save would append .npy to a name without it
    np.testing.assert_array_equal(np.load(tmp_path / "vectors.npy"), np.ones(3))


def test_a_directory_is_swapped_whole(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_without_replace_a_finished_copy_of_another_process_wins(tmp_path):
    target = tmp_path / "converted"
    target.mkdir()
    (target / "theirs").write_text("x")
    with atomic_path(target, replace=False) as tmp:
        tmp.mkdir()
        (tmp / "ours").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]


def test_what_it_writes_gets_the_users_umask_whatever_the_writer_chose(tmp_path):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_path(tmp_path / "model") as tmp:
        (tmp / "sub").mkdir(mode=0o700, parents=True)
        fd = os.open(tmp / "sub" / "weights.bin", os.O_CREAT | os.O_WRONLY, 0o600)  # as tempfile does
        os.close(fd)
    assert (tmp_path / "model" / "sub" / "weights.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "model" / "sub").stat().st_mode & 0o777 == 0o777 & ~umask
