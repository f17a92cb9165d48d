"""`dockyard supervise --status` succeeds when every process runs and the one-shots are done."""

from shared.supervise import all_running

RUNNING = "auth                             RUNNING   pid 12810, uptime 0:00:44\n"
READY_DONE = "ready                            EXITED    Dec 01 03:51 AM\n"


def test_every_process_running_and_ready_exited_is_all_running():
    assert all_running(RUNNING + READY_DONE)


def test_a_stopped_or_crashing_process_is_not():
    assert not all_running(
        RUNNING + "relay-files                      BACKOFF   Exited too quickly\n"
    )
    assert not all_running(RUNNING + "gateway                          EXITED    Dec 01 03:51 AM\n")
    assert not all_running(
        RUNNING + "tasks                            FATAL     Exited too quickly\n"
    )


def test_no_answer_at_all_is_not():
    assert not all_running("")
