"""What an operator cannot save: targets and aliases that could not serve, or would store a secret."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from routing.models import ModelAlias, Protocol, RouterTarget
from routing.prompts import flatten_messages
from tests.factories import ModelAliasFactory, RouterPoolFactory, RouterTargetFactory

pytestmark = pytest.mark.django_db


def errors_of(obj: RouterTarget | ModelAlias) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        obj.full_clean()
    return caught.value.message_dict


def test_a_cortensor_target_needs_a_session_and_a_key_variable() -> None:
    target = RouterTarget(pool=RouterPoolFactory(), name="a", base_url="http://10.0.0.1:8100", protocol="cortensor")
    errors = errors_of(target)
    assert "session_id" in errors and "api_key_env" in errors


def test_an_openai_target_has_no_session_and_may_go_without_a_key() -> None:
    pool = RouterPoolFactory()
    target = RouterTarget(pool=pool, name="v", base_url="http://10.0.0.2/v1", protocol=Protocol.OPENAI, session_id=3)
    assert "session_id" in errors_of(target)
    target.session_id = None
    target.full_clean()


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("http://user:sk-secret@10.0.0.1:8100", "base_url"),  # a key smuggled into the URL
        ("ftp://10.0.0.1", "base_url"),
        ("http://10.0.0.1/?key=abc", "base_url"),
    ],
)
def test_base_urls_carry_no_credentials_and_are_http(url: str, field: str) -> None:
    target = RouterTargetFactory.build(pool=RouterPoolFactory(), base_url=url)
    assert field in errors_of(target)


def test_the_key_field_takes_a_variable_name_not_a_key() -> None:
    target = RouterTargetFactory.build(pool=RouterPoolFactory(), api_key_env="sk-live 123/abc")
    assert "api_key_env" in errors_of(target)


def test_the_database_refuses_a_cortensor_target_without_a_session() -> None:
    with pytest.raises(IntegrityError):
        RouterTargetFactory(session_id=None)


def test_target_names_are_unique_within_a_pool_only() -> None:
    first = RouterTargetFactory(name="a")
    RouterTargetFactory(name="a")  # another pool
    duplicate = RouterTargetFactory.build(pool=first.pool, name="a")
    assert "__all__" in errors_of(duplicate)


def test_an_alias_template_must_place_the_content_once() -> None:
    alias = ModelAliasFactory.build(pool=RouterPoolFactory(), prompt_template="{role}: hello")
    assert "prompt_template" in errors_of(alias)
    alias.alias = "Has Spaces"
    assert "alias" in errors_of(alias)


def test_the_default_template_gives_a_plain_transcript_ending_where_the_assistant_speaks() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": None}]
    assert flatten_messages(messages) == "system: Be brief.\nuser: \nassistant:"
