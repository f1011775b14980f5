"""Make the gateway tests' catalog in the database named by DATABASE_URL (a private server the test process is not
connected to) and print the key's secret as JSON: `python -m tests.faults.seed --sandbox-url URL`. With
`--new-key`, only issue another key for the organization made before."""

from __future__ import annotations

import argparse
import json
import os

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sandbox-url", default="")
    parser.add_argument("--new-key", action="store_true")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()

    from accounts.models import Organization
    from tests.conftest import Sandbox
    from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, issue_key, verified
    from tests.gateway.conftest import make_catalog

    if options.new_key:
        org = Organization.objects.get(slug="acme")
        owner = org.memberships.get().user  # type: ignore[attr-defined]
        _, secret = issue_key(org, verified(owner), name="issued after the fault")
        print(json.dumps({"secret": secret}))
        return
    org = OrganizationFactory(name="Acme", slug="acme")
    owner = MembershipFactory(organization=org, user=UserFactory(email="owner@example.com"), role="owner").user
    sandbox = Sandbox(int(options.sandbox_url.rsplit(":", 1)[1]))
    catalog = make_catalog(sandbox, org, owner, key_rate_requests=100_000, short_requests=100_000,
                           weekly_requests=100_000)  # fmt: skip
    print(json.dumps({"secret": catalog.secret}))


if __name__ == "__main__":
    main()
