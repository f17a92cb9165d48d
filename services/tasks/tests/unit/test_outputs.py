"""A task attempt's /output on the host: collected within the limits, read without following."""

from __future__ import annotations

import os
import uuid

import pytest

from services.tasks import outputs


@pytest.fixture
def attempt(tmp_path):
    """An attempt's directory, prepared as the start job prepares it."""
    task_id = uuid.uuid4()
    path = outputs.prepare_attempt_dir(str(tmp_path), task_id, 1, user="65534:65534")
    return task_id, path


def test_the_directory_belongs_to_the_containers_user_and_no_one_else(tmp_path, attempt):
    _task_id, path = attempt
    info = os.stat(path)
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (65534, 65534, 0o700)
    else:
        assert info.st_mode & 0o777 == 0o777


def test_preparing_again_keeps_what_an_adopted_container_wrote(tmp_path, attempt):
    task_id, path = attempt
    with open(os.path.join(path, "written.txt"), "w") as file:
        file.write("by the container a crashed start job started")
    assert outputs.prepare_attempt_dir(str(tmp_path), task_id, 1, user="") == path
    assert os.listdir(path) == ["written.txt"]


def test_collect_keeps_regular_files_in_path_order_within_the_limits(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_bytes(b"22")
    (tmp_path / "a.txt").write_bytes(b"1")
    (tmp_path / "c.txt").write_bytes(b"333")
    (tmp_path / "d.txt").write_bytes(b"4444")
    found = outputs.collect(tmp_path, max_files=4, max_bytes=5)
    assert found.kept == [outputs.Output("a.txt", 1), outputs.Output("b/two.txt", 2)]
    assert [(item.path, item.reason) for item in found.dropped] == [
        ("c.txt", "over TASKS_OUTPUT_MAX_BYTES (5)"),
        ("d.txt", "over TASKS_OUTPUT_MAX_BYTES (5)"),
    ]
    many = outputs.collect(tmp_path, max_files=1, max_bytes=100)
    assert [item.path for item in many.kept] == ["a.txt"]
    assert "over TASKS_OUTPUT_MAX_FILES (1)" in many.dropped[0].reason


def test_collect_follows_no_link_and_drops_what_is_not_a_regular_file(tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-secret"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (tmp_path / "file-link").symlink_to(outside / "secret.txt")
    (tmp_path / "dir-link").symlink_to(outside)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "mine.txt").write_text("mine")
    found = outputs.collect(tmp_path, max_files=10, max_bytes=100)
    assert found.kept == [outputs.Output("mine.txt", 4)]
    assert sorted((item.path, item.reason) for item in found.dropped) == [
        ("dir-link", "a symbolic link (never followed)"),
        ("file-link", "a symbolic link (never followed)"),
        ("pipe", "not a regular file"),
    ]


def test_open_output_reads_a_regular_file_and_refuses_links_on_the_way(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ok.txt").write_text("fine")
    (tmp_path / "via").symlink_to(tmp_path / "sub")
    (tmp_path / "to-passwd").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "pipe")
    fd, size = outputs.open_output(tmp_path, "sub/ok.txt")
    try:
        assert (os.read(fd, 100), size) == (b"fine", 4)
    finally:
        os.close(fd)
    for path in ("via/ok.txt", "to-passwd", "pipe", "sub", "../x", "sub/../sub/ok.txt", "", "a//b"):
        with pytest.raises(outputs.OutputPathInvalid):
            outputs.open_output(tmp_path, path)


def test_over_limits_says_which_limit_a_running_task_passed(tmp_path):
    assert outputs.over_limits(tmp_path, max_files=2, max_bytes=10) is None
    for n in range(3):
        (tmp_path / f"{n}.txt").write_bytes(b"x")
    assert "TASKS_OUTPUT_MAX_FILES" in outputs.over_limits(tmp_path, max_files=2, max_bytes=10)
    (tmp_path / "big").write_bytes(b"x" * 20)
    assert "TASKS_OUTPUT_MAX_BYTES" in outputs.over_limits(tmp_path, max_files=10, max_bytes=10)


def test_removing_a_task_dir_removes_links_not_their_targets(tmp_path):
    task_id = uuid.uuid4()
    path = outputs.prepare_attempt_dir(str(tmp_path / "root"), task_id, 1, user="")
    target = tmp_path / "keep.txt"
    target.write_text("keep")
    os.symlink(target, os.path.join(path, "link"))
    outputs.remove_task_dir(str(tmp_path / "root"), task_id)
    assert not outputs.task_dir(str(tmp_path / "root"), task_id).exists()
    assert target.read_text() == "keep"


def test_a_directory_nested_deeper_than_the_recursion_limit_is_scanned(tmp_path):
    deep = tmp_path
    for _ in range(1200):
        deep = deep / "d"
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(1200):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("last.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as file:
            file.write("x")
    finally:
        os.close(fd)
    try:
        found = outputs.collect(tmp_path, max_files=200, max_bytes=100)
        # Found (no RecursionError), and dropped: its path is longer than a file may record.
        assert found.kept == []
        assert [item.reason for item in found.dropped] == ["the path is too long"]
        assert outputs.over_limits(tmp_path, max_files=200, max_bytes=100) is None
        # Past the entries a scan looks at, a running task is over its limits.
        assert "entries" in outputs.over_limits(tmp_path, max_files=10, max_bytes=100)
    finally:
        # Deeper than shutil.rmtree (pytest's own cleanup) can go.
        outputs.remove_tree(tmp_path)
    assert not tmp_path.exists()


def test_removing_the_last_attempts_directory_removes_the_tasks(tmp_path):
    task_id = uuid.uuid4()
    root = str(tmp_path)
    outputs.prepare_attempt_dir(root, task_id, 1, user="")
    outputs.prepare_attempt_dir(root, task_id, 2, user="")
    outputs.remove_attempt_dir(root, task_id, 1)
    assert os.listdir(outputs.task_dir(root, task_id)) == ["2"]
    outputs.remove_attempt_dir(root, task_id, 2)
    assert not outputs.task_dir(root, task_id).exists()
