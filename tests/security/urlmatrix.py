"""The authorization matrix: for every URL pattern of the site, what each persona gets.

The test (test_authorization_matrix.py) walks `get_resolver()` and fails for a pattern that has no entry here, and for
an entry whose pattern is gone, so a new view cannot ship without someone deciding who may use it. To add a view:
add `"<url name>": (Probe(...), ...)` below, usually with one of the rule helpers (`org_page`, `manager_action`, ...).

Personas (tests/conftest.py): `owner`, `admin` and `member` of Acme, `outsider` (owner of another organization) and
`anonymous`. URLs are built from a `World` (tests/security/conftest.py) holding Acme's objects.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse

ANON, OWNER, ADMIN, MEMBER, OUTSIDER = "anonymous", "owner", "admin", "member", "outsider"
PERSONAS = (ANON, OWNER, ADMIN, MEMBER, OUTSIDER)


class Outcome(enum.Enum):
    OK = "served"  # below 400 and not a redirect to a sign-in page; 400/422 for a refused form also count
    LOGIN = "redirected to the sign-in page"
    ADMIN_LOGIN = "redirected to the admin sign-in page"
    FORBIDDEN = "403"
    NOT_FOUND = "404"
    API_REFUSED = "401 from the API"
    NOT_ALLOWED = "405"


OK, LOGIN, ADMIN_LOGIN, FORBIDDEN, NOT_FOUND, API_REFUSED, NOT_ALLOWED = (
    Outcome.OK,
    Outcome.LOGIN,
    Outcome.ADMIN_LOGIN,
    Outcome.FORBIDDEN,
    Outcome.NOT_FOUND,
    Outcome.API_REFUSED,
    Outcome.NOT_ALLOWED,
)

World = Any  # tests.security.conftest.World; typed loosely so this module imports without the fixtures
UrlFor = Callable[[World], str]


@dataclass(frozen=True)
class Probe:
    method: str
    url: UrlFor
    expect: Mapping[str, Outcome]
    data: Callable[[World], dict[str, Any]] = field(default=lambda world: {})
    json: bool = False
    follow: bool = False  # judge where the redirects lead, not the first answer

    def __post_init__(self) -> None:
        assert set(self.expect) == set(PERSONAS), f"a probe must say what every persona gets: {self.expect}"


def to(name: str, **kwargs: Callable[[World], Any]) -> UrlFor:
    """A URL builder: `to("key_detail", slug=lambda w: w.org.slug, key_id=lambda w: w.key.pk)`."""
    return lambda world: reverse(name, kwargs={k: f(world) for k, f in kwargs.items()})


def query(builder: UrlFor, suffix: str) -> UrlFor:
    return lambda world: builder(world) + suffix


def acme(world: World) -> str:
    return str(world.org.slug)


def rule(anon: Outcome, owner: Outcome, admin: Outcome, member: Outcome, outsider: Outcome) -> dict[str, Outcome]:
    return {ANON: anon, OWNER: owner, ADMIN: admin, MEMBER: member, OUTSIDER: outsider}


PUBLIC = rule(OK, OK, OK, OK, OK)
SIGNED_IN = rule(LOGIN, OK, OK, OK, OK)
ORG_PAGE = rule(LOGIN, OK, OK, OK, NOT_FOUND)  # every member reads; other organizations get 404
MANAGER_ACTION = rule(LOGIN, OK, OK, FORBIDDEN, NOT_FOUND)  # owners and admins change
OWNER_ACTION = rule(LOGIN, OK, FORBIDDEN, FORBIDDEN, NOT_FOUND)
API_ORG_READ = rule(API_REFUSED, OK, OK, OK, NOT_FOUND)
API_MANAGE = rule(API_REFUSED, OK, OK, FORBIDDEN, NOT_FOUND)
STAFF_ONLY = rule(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN)  # no customer is staff


def get(url: UrlFor, expect: Mapping[str, Outcome]) -> Probe:
    return Probe("GET", url, expect)


def post(url: UrlFor, expect: Mapping[str, Outcome], data: Callable[[World], dict[str, Any]] | None = None) -> Probe:
    return Probe("POST", url, expect, data or (lambda world: {}))


def api(method: str, url: UrlFor, expect: Mapping[str, Outcome], data: dict[str, Any] | None = None) -> Probe:
    return Probe(method, url, expect, lambda world: dict(data or {}), json=True)


ORG = {"slug": acme}
KEY = {"slug": acme, "key_id": lambda w: w.key.pk}
MEMBER_ROW = {"slug": acme, "member_id": lambda w: w.member_membership.pk}
API_ORG = "?organization=acme"  # a session caller names the organization; an outsider naming Acme gets 404

MATRIX: dict[str, tuple[Probe, ...]] = {
    # Site pages
    "home": (get(to("home"), PUBLIC),),
    "healthz": (get(to("healthz"), PUBLIC),),
    "readyz": (get(to("readyz"), PUBLIC),),  # 200 or 503, both "served": it names checks, never hosts
    # Sign-in (allauth). Anonymous pages redirect signed-in people onward, which is also "served".
    "account_login": (get(to("account_login"), PUBLIC),),
    "account_logout": (get(to("account_logout"), PUBLIC), post(to("account_logout"), PUBLIC)),
    "account_inactive": (get(to("account_inactive"), PUBLIC),),
    "account_signup": (get(to("account_signup"), PUBLIC),),
    "account_reauthenticate": (get(to("account_reauthenticate"), SIGNED_IN),),
    "account_email": (get(to("account_email"), SIGNED_IN),),
    "account_email_verification_sent": (get(to("account_email_verification_sent"), PUBLIC),),
    "account_change_password": (get(to("account_change_password"), SIGNED_IN),),
    "account_set_password": (get(to("account_set_password"), SIGNED_IN),),
    "account_reset_password": (get(to("account_reset_password"), PUBLIC),),
    "account_reset_password_done": (get(to("account_reset_password_done"), PUBLIC),),
    "account_reset_password_from_key_done": (get(to("account_reset_password_from_key_done"), PUBLIC),),
    # A wrong key shows allauth's "bad token" page to everyone: nothing to authorize before the token is right.
    "account_reset_password_from_key": (
        get(to("account_reset_password_from_key", uidb36=lambda w: "1", key=lambda w: "bad-key"), PUBLIC),
    ),
    "account_confirm_email": (get(to("account_confirm_email", key=lambda w: "bad-key"), PUBLIC),),
    # No code is pending: anonymous people go back to sign-in, signed-in people onward.
    "account_confirm_login_code": (get(to("account_confirm_login_code"), SIGNED_IN),),
    # Sign-In with Ethereum: public JSON endpoints (a bad body is a 400, never a 500).
    "siwe": (get(to("siwe"), PUBLIC),),
    "siwe_challenge": (
        Probe(
            "POST",
            to("siwe_challenge"),
            PUBLIC,
            lambda w: {"address": "0x000000000000000000000000000000000000dEaD", "chain_id": 1},
            json=True,
        ),
    ),
    "siwe_verify": (
        Probe("POST", to("siwe_verify"), PUBLIC, lambda w: {"message": "x", "signature": "0x"}, json=True),
    ),
    "wallets": (get(to("wallets"), SIGNED_IN),),
    # Unlinking is scoped to the signed-in user: another user's wallet id is "No such wallet" (a message, no change).
    "wallet_unlink": (post(to("wallet_unlink", wallet_id=lambda w: w.wallet.pk), SIGNED_IN),),
    # Organizations
    "organization_list": (get(to("organization_list"), SIGNED_IN), post(to("organization_list"), SIGNED_IN)),
    "organization_switch": (
        post(to("organization_switch"), rule(LOGIN, OK, OK, OK, NOT_FOUND), lambda w: {"organization": acme(w)}),
    ),
    "organization_detail": (get(to("organization_detail", **ORG), ORG_PAGE),),
    "organization_leave": (post(to("organization_leave", **ORG), ORG_PAGE),),
    "member_role": (post(to("member_role", **MEMBER_ROW), MANAGER_ACTION, lambda w: {"role": "admin"}),),
    "member_remove": (post(to("member_remove", **MEMBER_ROW), MANAGER_ACTION),),
    "invitation_create": (
        post(to("invitation_create", **ORG), MANAGER_ACTION, lambda w: {"email": "new@example.com", "role": "member"}),
    ),
    "invitation_revoke": (
        post(to("invitation_revoke", slug=acme, invitation_id=lambda w: w.invitation.pk), MANAGER_ACTION),
    ),
    # The emailed link is the credential: any signed-in person may open it (accepting checks the address).
    "invitation_accept": (
        get(to("invitation_accept", token=lambda w: w.invitation_token), SIGNED_IN),
        post(to("invitation_accept", token=lambda w: w.invitation_token), SIGNED_IN),
    ),
    # API key pages
    "current_keys": (get(to("current_keys"), SIGNED_IN),),
    "key_list": (get(to("key_list", **ORG), ORG_PAGE), post(to("key_list", **ORG), MANAGER_ACTION)),
    "key_detail": (get(to("key_detail", **KEY), ORG_PAGE), post(to("key_detail", **KEY), MANAGER_ACTION)),
    "key_revoke": (get(to("key_revoke", **KEY), MANAGER_ACTION), post(to("key_revoke", **KEY), MANAGER_ACTION)),
    "key_rotate": (post(to("key_rotate", **KEY), MANAGER_ACTION),),
    # Plan pages
    "plan_detail": (get(to("plan_detail", **ORG), ORG_PAGE),),
    "plan_upgrade_request": (post(to("plan_upgrade_request", **ORG), OWNER_ACTION),),
    "plan_statement": (get(to("plan_statement", slug=acme, year=lambda w: w.year, month=lambda w: w.month), ORG_PAGE),),
    # Usage pages (metering/urls.py): every member reads them; the "current" links go to the organization worked in.
    "current_dashboard": (get(to("current_dashboard"), SIGNED_IN),),
    "current_usage": (get(to("current_usage"), SIGNED_IN),),
    "dashboard": (get(to("dashboard", **ORG), ORG_PAGE),),
    "usage": (get(to("usage", **ORG), ORG_PAGE),),
    "models": (get(to("models", **ORG), ORG_PAGE),),
    "request_log": (get(to("request_log", **ORG), ORG_PAGE),),
    "request_detail": (get(to("request_detail", slug=acme, request_id=lambda w: w.request_id), ORG_PAGE),),
    # Management API (session callers here; key callers in tests/apikeys/test_api.py and tests/contract)
    "apikey-list": (
        api("GET", query(to("apikey-list"), API_ORG), API_ORG_READ),
        api("POST", query(to("apikey-list"), API_ORG), API_MANAGE, {"name": "from the matrix"}),
    ),
    "apikey-detail": (
        api("GET", query(to("apikey-detail", pk=lambda w: w.key.pk), API_ORG), API_ORG_READ),
        api("PATCH", query(to("apikey-detail", pk=lambda w: w.key.pk), API_ORG), API_MANAGE, {"name": "renamed"}),
        api("DELETE", query(to("apikey-detail", pk=lambda w: w.key.pk), API_ORG), API_MANAGE),
    ),
    "apikey-revoke": (api("POST", query(to("apikey-revoke", pk=lambda w: w.key.pk), API_ORG), API_MANAGE),),
    "apikey-rotate": (
        api("POST", query(to("apikey-rotate", pk=lambda w: w.key.pk), API_ORG), API_MANAGE, {"grace": "none"}),
    ),
    "usage-list": (api("GET", query(to("usage-list"), API_ORG), API_ORG_READ),),
    "usage-request-list": (api("GET", query(to("usage-request-list"), API_ORG), API_ORG_READ),),
    "usage-request-detail": (
        api("GET", query(to("usage-request-detail", request_id=lambda w: w.request_id), API_ORG), API_ORG_READ),
    ),
    # The schema and its reference page describe the API; they hold no organization's data.
    "api_schema": (get(to("api_schema"), PUBLIC),),
    "api_docs": (get(to("api_docs"), PUBLIC),),
    # Django admin, beyond the generated STAFF_ONLY rule below
    "admin:login": (get(to("admin:login"), PUBLIC),),
    "route:/admin/(?P<url>.*)$": (Probe("GET", lambda w: "/admin/no-such-page/", STAFF_ONLY, follow=True),),
}

# Whole namespaces whose views share one guard (the admin site's `admin_view`): every pattern in it is still probed,
# with arguments made up from its converters, and expected to refuse every customer persona.
NAMESPACE_RULES: dict[str, Mapping[str, Outcome]] = {"admin": STAFF_ONLY}
ADMIN_ARGUMENTS = {"object_id": "1", "id": "1", "content_type_id": "1", "app_label": "accounts", "url": "x/"}


@dataclass(frozen=True)
class Pattern:
    key: str  # the namespaced URL name, or "route:<route>" for an unnamed pattern
    route: str
    namespace: str
    converters: tuple[str, ...]


def url_patterns() -> Iterator[Pattern]:
    """Every URL pattern of the site, depth first, with the namespace it sits in."""

    def walk(resolver: URLResolver, prefix: str, namespace: str) -> Iterator[Pattern]:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                inner = ":".join(part for part in (namespace, entry.namespace or "") if part)
                yield from walk(entry, prefix + str(entry.pattern), inner)
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
                converters = tuple(entry.pattern.converters) if hasattr(entry.pattern, "converters") else ()
                yield Pattern(name or f"route:{route}", route, namespace, converters)

    yield from walk(get_resolver(), "/", "")


def _admin_url(pattern: Pattern) -> UrlFor:
    if pattern.key.startswith("route:"):
        path = pattern.route
        for name in ADMIN_ARGUMENTS:
            for converter in ("path", "int", "str", ""):
                tag = f"<{converter}:{name}>" if converter else f"<{name}>"
                path = path.replace(tag, ADMIN_ARGUMENTS[name])
        return lambda world: path
    name = pattern.key
    return lambda world: _reverse_with_made_up_arguments(name)


def _reverse_with_made_up_arguments(name: str) -> str:
    from django.urls import NoReverseMatch

    for kwargs in ({}, {"app_label": "accounts"}, {"object_id": "1"}, {"id": "1"}):
        try:
            return reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
    return reverse(name, kwargs={"content_type_id": "1", "object_id": "1"})


def probes_for(pattern: Pattern) -> tuple[Probe, ...] | None:
    if pattern.key in MATRIX:
        return MATRIX[pattern.key]
    expect = NAMESPACE_RULES.get(pattern.namespace.split(":")[0])
    if expect is None:
        return None
    # Redirects are followed: the admin's bare object URL (and logout) lead on to pages the admin guard refuses.
    return (Probe("GET", _admin_url(pattern), expect, follow=True),)
