from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import (
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_list,
    env_slug,
    env_url,
    mailer_from_url,
    parse_database_url,
)


def test_env_bool_reads_the_usual_spellings() -> None:
    assert env_bool("X", environ={"X": "yes"}) is True
    assert env_bool("X", environ={"X": "Off"}) is False
    assert env_bool("X", True, environ={}) is True


def test_env_bool_refuses_a_typo_naming_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", environ={"DEBUG": "ture"})


def test_env_int_refuses_words_and_out_of_range_numbers() -> None:
    assert env_int("N", 5, environ={"N": " 12 "}) == 12
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 5, environ={"N": "twelve"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("N", 5, minimum=1, environ={"N": "0"})
    with pytest.raises(ImproperlyConfigured, match="at most 10"):
        env_int("N", 5, maximum=10, environ={"N": "11"})


def test_env_float_refuses_nan_and_words() -> None:
    assert env_float("T", 1.0, environ={"T": "2.5"}) == 2.5
    with pytest.raises(ImproperlyConfigured):
        env_float("T", 1.0, environ={"T": "nan"})
    with pytest.raises(ImproperlyConfigured):
        env_float("T", 1.0, environ={"T": "soon"})


def test_env_list_splits_on_commas_and_refuses_empty_items() -> None:
    assert env_list("H", [], environ={"H": "a.example, b.example"}) == ["a.example", "b.example"]
    assert env_list("H", ["x"], environ={}) == ["x"]
    with pytest.raises(ImproperlyConfigured, match="empty item"):
        env_list("H", [], environ={"H": "a.example,,b.example"})


def test_env_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ImproperlyConfigured, match="development, production"):
        env_choice("PORTAL_PROFILE", "development", ("development", "production"), environ={"PORTAL_PROFILE": "prod"})


def test_env_slug_is_none_when_unset_and_refuses_what_is_not_a_slug() -> None:
    assert env_slug("SIWE_WALLET_ONLY_PLAN", environ={}) is None
    assert env_slug("SIWE_WALLET_ONLY_PLAN", environ={"SIWE_WALLET_ONLY_PLAN": " "}) is None
    assert env_slug("SIWE_WALLET_ONLY_PLAN", environ={"SIWE_WALLET_ONLY_PLAN": " wallet-starter "}) == "wallet-starter"
    with pytest.raises(ImproperlyConfigured, match="SIWE_WALLET_ONLY_PLAN must be a slug"):
        env_slug("SIWE_WALLET_ONLY_PLAN", environ={"SIWE_WALLET_ONLY_PLAN": "Wallet plan"})
    with pytest.raises(ImproperlyConfigured, match="at most 40"):
        env_slug("SIWE_WALLET_ONLY_PLAN", environ={"SIWE_WALLET_ONLY_PLAN": "x" * 41})


def test_env_url_requires_a_scheme_and_host() -> None:
    assert env_url("U", "http://x", environ={"U": "https://portal.example/"}) == "https://portal.example"
    with pytest.raises(ImproperlyConfigured, match="PORTAL_BASE_URL"):
        env_url("PORTAL_BASE_URL", "http://x", environ={"PORTAL_BASE_URL": "portal.example"})


def test_database_url_defaults_to_a_sqlite_file() -> None:
    config = env_database("DATABASE_URL", "sqlite:///portal.sqlite3", environ={})
    assert config == {"ENGINE": "django.db.backends.sqlite3", "NAME": "portal.sqlite3"}


def test_database_url_reads_postgres_parts_and_options() -> None:
    config = parse_database_url("DATABASE_URL", "postgres://app:s%40cret@db.internal:6543/portal?sslmode=require")
    django = config.as_django()
    assert django["ENGINE"] == "django.db.backends.postgresql"
    assert (django["NAME"], django["USER"], django["PASSWORD"]) == ("portal", "app", "s@cret")
    assert (django["HOST"], django["PORT"]) == ("db.internal", "6543")
    assert django["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/db",
        "postgres://localhost",
        "postgres:///db",
        "sqlite://",
        "postgres://h:port/db",
    ],
)
def test_database_url_refuses_what_it_cannot_use(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        parse_database_url("DATABASE_URL", url)


def test_email_url_becomes_an_smtp_mailer() -> None:
    mailer = mailer_from_url("EMAIL_URL", "smtp://postmaster:p%40ss@mail.example:587")
    assert mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert mailer["OPTIONS"] == {
        "host": "mail.example",
        "port": 587,
        "username": "postmaster",
        "password": "p@ss",
        "use_tls": True,
        "timeout": 10,
    }
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
        mailer_from_url("EMAIL_URL", "mail.example:25")
