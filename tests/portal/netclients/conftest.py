from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.portal.netclients.servers import Certificates, PrivateRedis, make_certificates


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_redis(certificates: Certificates) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tls=certificates, bind="127.0.0.1 127.0.0.2")  # .2: an address the certificate lacks
    yield server
    server.close()


@pytest.fixture(scope="module")
def auth_redis() -> Iterator[PrivateRedis]:
    """`requirepass` for the default user, and an ACL user `portal` whose password needs percent-encoding in a URL."""
    server = PrivateRedis("--requirepass", "door-pass", "--user", "portal", "on", ">s3cr:et@/x", "~*", "&*", "+@all")
    yield server
    server.close()
