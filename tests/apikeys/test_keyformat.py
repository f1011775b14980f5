from __future__ import annotations

import re

from apikeys.keyformat import KEY_LENGTH, KeyShape, display_prefix, generate_key, key_digest, last_four, parse_key


def test_keys_are_recognisable_and_url_safe() -> None:
    key = generate_key()
    assert re.fullmatch(r"ctx_live_[0-9A-Za-z]{49}", key)
    assert len(key) == KEY_LENGTH


def test_keys_carry_256_bits_and_never_repeat() -> None:
    keys = {generate_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert len({key[9:13] for key in keys}) > 1500  # the visible start varies too


def test_a_fresh_key_parses_to_its_digest() -> None:
    key = generate_key()
    parsed = parse_key(key)
    assert parsed.shape is KeyShape.OK
    assert parsed.digest == key_digest(key)
    assert len(parsed.digest) == 64


def test_a_one_character_typo_is_caught_by_the_checksum() -> None:
    key = generate_key()
    position = 20
    typo = key[:position] + ("a" if key[position] != "a" else "b") + key[position + 1 :]
    assert parse_key(typo).shape is KeyShape.BAD_CHECKSUM
    assert parse_key(typo).digest == ""


def test_other_strings_are_malformed() -> None:
    key = generate_key()
    for text in ("", "sk-abc", key[:-1], "ctx_test_" + key[9:], key[:-2] + "!!", key + "x"):
        assert parse_key(text).shape is KeyShape.MALFORMED


def test_display_parts() -> None:
    key = generate_key()
    assert display_prefix(key) == key[:13]
    assert last_four(key) == key[-4:]
