"""The password policy: zxcvbn's score, with the account's email as a hint."""

from __future__ import annotations

import pytest

from services.auth.password_policy import WeakPassword, check_password, email_hints


@pytest.mark.parametrize("password", ["password", "12345678", "iloveyou", "qwertyuiop"])
def test_common_passwords_are_weak_and_the_message_says_why(password):
    with pytest.raises(WeakPassword, match="common") as refused:
        check_password(password)
    assert str(refused.value).endswith(".")


def test_a_password_made_of_the_email_is_weak_though_strong_for_anyone_else():
    check_password("wobbleflump77")
    with pytest.raises(WeakPassword):
        check_password("wobbleflump77", email="wobbleflump77@example.com")


def test_passphrases_pass_and_very_long_passwords_are_judged_by_their_start():
    check_password("rusty anchor at dawn", email="ada@example.com")
    check_password("rusty anchor at dawn" + "x" * 1000)
    with pytest.raises(WeakPassword):
        check_password("a" * 1024)


def test_email_hints_are_the_address_its_name_parts_and_domain_words():
    assert email_hints("Ada.Lovelace-1815@Example.com") == [
        "ada.lovelace-1815@example.com",
        "ada.lovelace-1815",
        "ada",
        "lovelace",
        "1815",
        "example",
        "com",
    ]
    assert email_hints(None) == []
