"""Removing a task's staged inputs while another remover takes them too is not an error.

A start the engine refuses cleans up its own input directory while the monitor's pass removes
the inputs of every ended task; found in a fresh-root run, where the launcher logged a
FileNotFoundError traceback for a directory the monitor had just removed.
"""

from __future__ import annotations

import os
import stat
import uuid

from services.tasks import input_staging
from services.tasks.containers import input_host_dir
from services.tasks.input_staging import InputStaging


def _staging(root) -> InputStaging:
    return InputStaging(root=str(root), files_url="http://127.0.0.1:9", files_secret="s", timeout=1)


def _staged_read_only(root, task_id: uuid.UUID) -> str:
    """A staged input directory as the launcher leaves it: read-only, holding one file."""
    path = input_host_dir(str(root), task_id)
    os.makedirs(path)
    with open(os.path.join(path, "notes.txt"), "w") as out:
        out.write("line\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IXUSR)
    return path


def test_a_directory_gone_between_the_check_and_the_removal_is_not_an_error(tmp_path, monkeypatch):
    task_id = uuid.uuid4()
    # The other remover takes it right after this one saw it.
    monkeypatch.setattr(input_staging.os.path, "isdir", lambda _path: True)

    _staging(tmp_path).remove(task_id)

    assert not os.path.exists(input_host_dir(str(tmp_path), task_id))


def test_a_file_the_other_remover_took_midway_is_not_an_error(tmp_path, monkeypatch):
    task_id = uuid.uuid4()
    path = _staged_read_only(tmp_path, task_id)
    real_unlink = os.unlink
    taken = []

    def the_other_remover_first(name, *args, **kwargs):
        if not taken:
            # As the monitor would: the directory made writable and its file removed first.
            os.chmod(path, stat.S_IRWXU)
            real_unlink(os.path.join(path, "notes.txt"))
            taken.append(name)
        return real_unlink(name, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", the_other_remover_first)

    _staging(tmp_path).remove(task_id)

    assert taken and not os.path.exists(path)


def test_a_read_only_staged_directory_is_removed(tmp_path):
    task_id = uuid.uuid4()
    path = _staged_read_only(tmp_path, task_id)

    _staging(tmp_path).remove(task_id)

    assert not os.path.exists(path)
