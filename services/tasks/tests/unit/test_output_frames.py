"""Splitting the engine's multiplexed log read into stdout and stderr."""

from __future__ import annotations

from services.tasks.containers import FrameTails, split_frames


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_interleaved_frames_are_split_by_stream_in_order():
    data = _frame(1, b"out1\n") + _frame(2, b"err1\n") + _frame(1, b"out2\n")
    assert split_frames(data) == {"stdout": b"out1\nout2\n", "stderr": b"err1\n"}


def test_no_output_gives_two_empty_streams():
    assert split_frames(b"") == {"stdout": b"", "stderr": b""}


def test_a_frame_of_another_stream_is_skipped_whole():
    data = _frame(0, b"stdin echo") + _frame(2, "é\n".encode())
    assert split_frames(data) == {"stdout": b"", "stderr": "é\n".encode()}


def test_a_cut_off_header_at_the_end_is_ignored():
    assert split_frames(_frame(1, b"x") + b"\x01\x00") == {"stdout": b"x", "stderr": b""}


def test_a_bounded_read_keeps_each_streams_end_and_counts_the_whole():
    frames = b"".join(_frame(1, b"%05d\n" % n) + _frame(2, b"e%04d\n" % n) for n in range(5000))
    tails = FrameTails(max_bytes=60)
    # Pieces cut across headers and payloads alike.
    for start in range(0, len(frames), 7):
        tails.feed(frames[start : start + 7])
        assert all(len(kept) <= 2 * 60 for kept in tails.kept.values())
    result = tails.result()
    assert result.data == {
        "stdout": b"".join(b"%05d\n" % n for n in range(4990, 5000)),
        "stderr": b"".join(b"e%04d\n" % n for n in range(4990, 5000)),
    }
    assert result.total == {"stdout": 30000, "stderr": 30000}
