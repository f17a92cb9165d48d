"""The monitor stores output in pieces that never split a UTF-8 character (until the last)."""

from __future__ import annotations

import pytest

from services.tasks.logs import complete_utf8_length

E_ACUTE, HAN, EMOJI = "é".encode(), "中".encode(), "😀".encode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0),
        (b"plain", 5),
        (b"a" + E_ACUTE, 3),
        (b"a" + E_ACUTE[:1], 1),
        (HAN[:2], 0),
        (b"x" + HAN[:1], 1),
        (EMOJI[:3], 0),
        (EMOJI, 4),
        # Not UTF-8 at all: nothing to wait for.
        (b"\x80\x80\x80\x80\x80", 5),
        (b"ab\xff", 3),
    ],
)
def test_an_unfinished_character_at_the_end_waits(data, expected):
    assert complete_utf8_length(data) == expected


def test_every_split_of_mixed_text_stores_whole_characters():
    text = "a é 中 😀 z\n".encode()
    for split in range(len(text) + 1):
        head = text[:split]
        kept = complete_utf8_length(head)
        head[:kept].decode()  # raises if a character was cut
        assert split - kept < 4
