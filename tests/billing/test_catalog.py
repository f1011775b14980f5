"""`manage.py catalog`: plans, pools and models as code — apply, check, export, and files with mistakes."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from billing.models import OverLimit, Plan
from portal.invalidation import add_local_listener, remove_local_listener
from routing.models import ModelAlias, RouterPool, RouterTarget
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db
EXAMPLE = Path(__file__).with_name("test_catalog_example.yaml")  # the small catalog most tests start from
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "catalog.md"  # the format's reference, with a full example


def catalog(*args: str) -> str:
    out = StringIO()
    call_command("catalog", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        catalog(*args)
    return caught.value


def write(tmp_path: Path, text: str, name: str = "catalog.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def counts() -> tuple[int, int, int, int]:
    return Plan.objects.count(), RouterPool.objects.count(), RouterTarget.objects.count(), ModelAlias.objects.count()


# -- the round trip the acceptance asks for -----------------------------------------------------------------------


def test_the_example_applies_to_an_empty_database_and_exports_back_to_the_same_catalog(tmp_path: Path) -> None:
    output = catalog("apply", str(EXAMPLE))
    assert "Applied 9 change(s)." in output
    free = Plan.objects.get(slug="free")
    assert (free.is_default, free.key_rate_requests, free.short_requests, free.weekly_window_seconds) == (
        True,
        20,
        200,
        604_800,
    )
    assert sorted(free.entitled_models.values_list("alias", flat=True)) == ["gemma-4-26b", "gpt-oss-20b"]
    assert Plan.objects.get(slug="pro").all_models
    router_a = RouterTarget.objects.get(name="router-a")
    assert (router_a.pool.slug, router_a.session_id, router_a.api_key_env, router_a.weight) == (
        "oss-20b",
        7,
        "ROUTER_A_KEY",
        2,
    )
    assert ModelAlias.objects.get(alias="gemma-4-26b").weight == 2

    exported = catalog("export")
    assert yaml.safe_load(exported) == yaml.safe_load(EXAMPLE.read_text()), "export is the example, entry for entry"
    assert "  - slug: free\n" in exported and "key_rate_limit: {requests: 20, window_seconds: 60}" in exported

    assert "No changes" in catalog("apply", "--check", write(tmp_path, exported))


# -- docs/catalog.md: its example applies and its tables name every field the file may hold ------------------------


def guide_example() -> str:
    """The one ```yaml block of docs/catalog.md."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", GUIDE.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "docs/catalog.md has exactly one yaml example"
    return blocks[0]


def test_the_example_in_the_catalog_guide_applies_and_round_trips(tmp_path: Path) -> None:
    example = write(tmp_path, guide_example())
    pending = refused("apply", "--check", example)
    assert pending.returncode == 1 and "13 change(s) would be made" in str(pending), "changes to make, no problem"
    assert counts() == (0, 0, 0, 0), "--check wrote nothing"

    output = catalog("apply", example)
    assert "Applied 13 change(s)." in output, output
    assert counts() == (3, 2, 4, 3)
    pro = Plan.objects.get(slug="pro")
    assert pro.all_models and pro.over_limit == OverLimit.DEGRADE and pro.degrade_to is not None
    assert Plan.objects.get(slug="free").upgrade_to == pro and not Plan.objects.get(slug="beta").active
    assert not RouterTarget.objects.get(name="router-c").enabled
    assert ModelAlias.objects.get(alias="qwen-chatml").prompt_template == "<|im_start|>{role}\n{content}<|im_end|>\n"

    assert "No changes" in catalog("apply", example)
    assert "No changes" in catalog("apply", "--check", write(tmp_path, catalog("export"), "exported.yaml"))


def documented_fields() -> dict[str, list[str]]:
    """Per `### `section`` heading of the guide, the fields its table lists, in order."""
    fields: dict[str, list[str]] = {}
    section = None
    for line in GUIDE.read_text().splitlines():
        if heading := re.fullmatch(r"### `(.+)`", line):
            section = heading.group(1)
            fields[section] = []
        elif section is not None and (row := re.match(r"\| `([a-z_]+)` \|", line)):
            fields[section].append(row.group(1))
    return fields


def accepted_fields(section: str, tmp_path: Path) -> list[str]:
    """What the catalog reader itself says it knows at `section`, asked with an unknown key there."""
    plan = {**PLAN, "key_rate_limit": {"requests": 1, "window_seconds": 60, "zz": 1}}
    plan["allowances"] = [{**plan["allowances"][0], "zz": 1}, plan["allowances"][1]]
    target = {"name": "t", "url": "http://127.0.0.1:1", "protocol": "openai", "zz": 1}
    document = {
        "plans": [{**plan, "zz": 1}],
        "pools": [{"slug": "p", "targets": [target], "zz": 1}],
        "models": [{"alias": "m", "pool": "p", "zz": 1}],
    }
    places = {
        "plans[]": "plans[0].zz",
        "plans[].key_rate_limit": "plans[0].key_rate_limit.zz",
        "plans[].allowances[]": "plans[0].allowances[0].zz",
        "pools[]": "pools[0].zz",
        "pools[].targets[]": "pools[0].targets[0].zz",
        "models[]": "models[0].zz",
    }
    error = str(refused("apply", write(tmp_path, json.dumps(document), "fields.json")))
    known = re.search(rf"\$\.{re.escape(places[section])}: unknown key 'zz' \(known: ([a-z_, ]+)\)", error)
    assert known is not None, error
    return known.group(1).split(", ")


@pytest.mark.parametrize(
    "section",
    ["plans[]", "plans[].key_rate_limit", "plans[].allowances[]", "pools[]", "pools[].targets[]", "models[]"],
)
def test_the_catalog_guide_documents_every_field_the_file_may_hold(section: str, tmp_path: Path) -> None:
    assert sorted(documented_fields()[section]) == sorted(accepted_fields(section, tmp_path))


def test_applying_twice_changes_nothing_the_second_time() -> None:
    catalog("apply", str(EXAMPLE))
    assert "No changes: the database already matches the file." in catalog("apply", str(EXAMPLE))
    assert AuditEvent.objects.filter(action="catalog.apply").count() == 1


def test_check_reports_what_would_change_exits_1_and_writes_nothing() -> None:
    error = refused("apply", "--check", str(EXAMPLE))
    assert error.returncode == 1
    assert "9 change(s) would be made" in str(error)
    assert counts() == (0, 0, 0, 0)


def test_check_lists_each_change(tmp_path: Path) -> None:
    catalog("apply", str(EXAMPLE))
    edited = EXAMPLE.read_text().replace("weight: 2\n      - name: router-b", "weight: 3\n      - name: router-b")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("catalog", "apply", "--check", write(tmp_path, edited), stdout=out)
    assert out.getvalue().splitlines() == ["~ target oss-20b/router-a: weight 2 -> 3"]
    assert RouterTarget.objects.get(name="router-a").weight == 2


def test_json_with_the_same_structure_is_accepted(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    catalog("apply", write(tmp_path, json.dumps(data), "catalog.json"))
    assert counts() == (2, 2, 3, 2)
    assert json.loads(catalog("export", "--json")) == data


# -- mistakes -----------------------------------------------------------------------------------------------------


def test_a_file_with_an_error_changes_nothing_and_names_the_line(tmp_path: Path) -> None:
    catalog("apply", str(EXAMPLE))
    text = EXAMPLE.read_text().replace("requests: 20,", "requests: 25,").replace("requests: 20\n", "requests: 25\n")
    text = text.replace("    pool: gemma4\n", "    pool: gemma5\n")  # near the end of the file
    error = refused("apply", write(tmp_path, text))
    assert error.returncode == 2
    line = next(n for n, content in enumerate(text.splitlines(), 1) if "pool: gemma5" in content)
    assert f"catalog.yaml, line {line} (models[1].pool): no pool 'gemma5'" in str(error)
    assert "nothing was changed" in str(error)
    assert Plan.objects.get(slug="free").key_rate_requests == 20, "the valid part of the file was not applied either"


CASES = [
    ("plans:\n  - slug: x\n    name: X\n    colour: red\n", 4, "unknown key 'colour'"),
    ("pools:\n  - slug: p\n    targets:\n      - {name: a, url: 'http://h', protocol: grpc}\n", 4, "must be one of"),
    (
        "pools:\n  - slug: p\n    targets:\n      - name: a\n        url: http://h\n        protocol: cortensor\n",
        4,
        "needs 'session_id'",
    ),
    (
        "pools:\n  - slug: p\n    targets:\n      - {name: a, url: 'http://k:sk-1@h', protocol: openai}\n",
        4,
        "credentials",
    ),
    ("models:\n  - alias: m\n    pool: nowhere\n", 3, "no pool 'nowhere'"),
    ("models:\n  - alias: m\n    pool: p\n    weight: -1\n", 4, "must be from 1"),
    ("models:\n  - alias: m\n    pool: p\n  - alias: m\n    pool: p\n", 4, "declared twice"),
    ("plans:\n  - slug: x\n    name: X\n    name: Y\n", 4, "given twice"),
    ("planz: []\n", 1, "unknown key 'planz'"),
    ("plans: [\n", 2, "not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "message"), CASES)
def test_mistakes_are_refused_with_their_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    error = refused("apply", write(tmp_path, text))
    assert f"line {line}" in str(error) and message in str(error), str(error)
    assert counts() == (0, 0, 0, 0)


PLAN = {
    "slug": "team",
    "name": "Team",
    "key_rate_limit": {"requests": 60, "window_seconds": 60},
    "allowances": [
        {"name": "short", "requests": 100, "window_seconds": 3600},
        {"name": "weekly", "requests": 1000, "window_seconds": 604800},
    ],
    "models": ["*"],
}


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"models": ["gpt-oss-20b", "no-such-model"]}, "$.plans[0].models[1]", "no model 'no-such-model'"),
        ({"over_limit": "degrade", "degrade_to": "tiny"}, "$.plans[0].degrade_to", "no model 'tiny'"),
        ({"over_limit": "degrade"}, "$.plans[0]", "needs 'degrade_to'"),
        ({"upgrade_to": "enterprise"}, "$.plans[0].upgrade_to", "no plan 'enterprise'"),
        ({"allowances": PLAN["allowances"][:1]}, "$.plans[0].allowances", "missing weekly"),
        (
            {"allowances": [{**PLAN["allowances"][0], "window_seconds": 604800}, PLAN["allowances"][1]]},
            "$.plans[0].allowances",
            "must be shorter than the weekly window",
        ),
        ({"key_rate_limit": {"requests": "20", "window_seconds": 60}}, "$.plans[0].key_rate_limit.requests", "whole"),
        ({"models": ["*", "gpt-oss-20b"]}, "$.plans[0].models", "stands alone"),
        ({"default": "yes"}, "$.plans[0].default", "true or false"),
    ],
)
def test_plan_mistakes_in_json_are_refused_with_their_path(
    tmp_path: Path, changes: dict[str, Any], where: str, message: str
) -> None:
    catalog("apply", str(EXAMPLE))
    before = catalog("export")
    document = {"plans": [{**PLAN, **changes}]}
    error = refused("apply", write(tmp_path, json.dumps(document), "plans.json"))
    assert f"plans.json at {where}: " in str(error) and message in str(error), str(error)
    assert catalog("export") == before


def test_a_catalog_must_leave_exactly_one_default_plan(tmp_path: Path) -> None:
    error = refused("apply", write(tmp_path, json.dumps({"plans": [PLAN]})))
    assert "exactly one active plan must be the default" in str(error)
    two = {"plans": [{**PLAN, "default": True}, {**PLAN, "slug": "other", "default": True}]}
    assert "only one plan can be the default" in str(refused("apply", write(tmp_path, json.dumps(two))))


# -- what apply does to what is already there ---------------------------------------------------------------------


def test_entries_left_out_are_kept_unless_pruned_and_plans_with_history_are_deactivated(tmp_path: Path) -> None:
    catalog("apply", str(EXAMPLE))
    SubscriptionFactory(plan=Plan.objects.get(slug="pro"))
    data = yaml.safe_load(EXAMPLE.read_text())
    data["plans"] = data["plans"][:1]
    data["plans"][0]["models"] = ["gpt-oss-20b"]
    data["models"] = data["models"][:1]
    data["pools"] = data["pools"][:1]
    data["pools"][0]["targets"] = data["pools"][0]["targets"][:1]
    smaller = write(tmp_path, yaml.safe_dump(data, sort_keys=False))

    catalog("apply", smaller)
    assert counts() == (2, 2, 3, 2), "without --prune nothing is deleted"

    output = catalog("apply", "--prune", smaller)
    assert "- model gemma-4-26b" in output and "- pool gemma4" in output and "- target oss-20b/router-b" in output
    assert "- plan pro (deactivated: organizations have been on it)" in output
    assert counts() == (2, 1, 1, 1)
    assert not Plan.objects.get(slug="pro").active
    assert "No changes" in catalog("apply", "--prune", smaller)


def test_prune_leaves_alone_the_sections_the_file_does_not_have(tmp_path: Path) -> None:
    catalog("apply", str(EXAMPLE))
    plans_only = {"plans": yaml.safe_load(EXAMPLE.read_text())["plans"][:1]}
    plans_only["plans"][0]["models"] = ["gpt-oss-20b"]
    output = catalog("apply", "--prune", write(tmp_path, yaml.safe_dump(plans_only)))
    assert "- plan pro" in output
    assert counts() == (1, 2, 3, 2)


def test_the_file_can_move_the_default_and_degrade_to_a_cheaper_model(tmp_path: Path) -> None:
    catalog("apply", str(EXAMPLE))
    data = yaml.safe_load(EXAMPLE.read_text())
    del data["plans"][0]["default"]
    data["plans"][1].update(default=True, over_limit="degrade", degrade_to="gpt-oss-20b", upgrade_to="free")
    output = catalog("apply", write(tmp_path, yaml.safe_dump(data, sort_keys=False)))
    assert "~ plan free: default true -> false" in output
    pro = Plan.objects.get(slug="pro")
    assert pro.is_default and pro.over_limit == OverLimit.DEGRADE and pro.degrade_to is not None
    assert pro.upgrade_to == Plan.objects.get(slug="free")
    assert yaml.safe_load(catalog("export"))["plans"][1]["degrade_to"] == "gpt-oss-20b"
    assert "No changes" in catalog("apply", "--check", write(tmp_path, catalog("export"), "again.yaml"))


def test_operational_state_is_not_the_catalogs_business() -> None:
    catalog("apply", str(EXAMPLE))
    RouterTarget.objects.filter(name="router-a").update(draining=True, health_status="unhealthy")
    assert "No changes" in catalog("apply", str(EXAMPLE))
    assert RouterTarget.objects.get(name="router-a").draining


def test_an_apply_is_audited_and_reaches_the_gateway(django_capture_on_commit_callbacks: Any) -> None:
    messages: list[tuple[str, str]] = []

    def listener(topic: str, ident: str) -> None:
        messages.append((topic, ident))

    add_local_listener(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            catalog("apply", str(EXAMPLE))
    finally:
        remove_local_listener(listener)
    assert sorted(messages) == [("plan", "free"), ("plan", "pro"), ("routing", "")]
    event = AuditEvent.objects.get(action="catalog.apply")
    assert event.data["count"] == 9 and "+ plan free" in event.data["changes"]
