"""Both Redis clients the portal builds from REDIS_URL (portal/redis.py: the pipelined hot-path client and redis-py's,
sync and asyncio) against private redis-servers: TLS with a private CA named in the URL, a wrong CA refused, the
default user's password and an ACL user, a wrong password refused without the password in the error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.asyncio as aioredis
from redis import exceptions as rexc

from portal import redis as portal_redis
from portal.netclients.redis_pipe import PipelinedRedis
from tests.portal.netclients.servers import Certificates, PrivateRedis

pytestmark = pytest.mark.slow

Client = PipelinedRedis | aioredis.Redis
CLIENTS: dict[str, Callable[[str], Client]] = {
    "pipelined": lambda url: PipelinedRedis(url, connect_timeout=2.0, timeout=2.0),
    "redis-py": lambda url: aioredis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0),
}


def run(make: Callable[[str], Client], url: str, scenario: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = make(url)
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


async def round_trip(client: Client) -> tuple[object, object]:
    """A write, a read, and who the server says we are."""
    await client.set("conformance", "over the wire")
    if isinstance(client, PipelinedRedis):
        return await client.get("conformance"), await client.execute("ACL", "WHOAMI")
    return await client.get("conformance"), await client.execute_command("ACL", "WHOAMI")


def tls_url(server: PrivateRedis, ca: str) -> str:
    return f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={quote(ca)}"


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_tls_with_the_ca_named_in_the_url(kind: str, tls_redis: PrivateRedis, certificates: Certificates) -> None:
    value, user = run(CLIENTS[kind], tls_url(tls_redis, str(certificates.ca)), round_trip)
    assert (value, user) == (b"over the wire", b"default")


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_tls_refuses_a_server_certificate_another_ca_signed(
    kind: str, tls_redis: PrivateRedis, certificates: Certificates
) -> None:
    for url in (tls_url(tls_redis, str(certificates.other_ca)), f"rediss://127.0.0.1:{tls_redis.port}/0"):
        with pytest.raises(rexc.ConnectionError, match="certificate verify failed"):
            run(CLIENTS[kind], url, round_trip)


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_tls_checks_the_certificates_name_against_the_host_unless_the_url_says_not_to(
    kind: str, tls_redis: PrivateRedis, certificates: Certificates
) -> None:
    """The certificate names 127.0.0.1 and localhost; the server also listens on 127.0.0.2, a name it lacks."""
    url = tls_url(tls_redis, str(certificates.ca)).replace("127.0.0.1", "127.0.0.2")
    with pytest.raises(rexc.ConnectionError, match="mismatch"):
        run(CLIENTS[kind], url, round_trip)
    assert run(CLIENTS[kind], url + "&ssl_check_hostname=false", round_trip)[0] == b"over the wire"
    localhost = tls_url(tls_redis, str(certificates.ca)).replace("127.0.0.1", "localhost")
    assert run(CLIENTS[kind], localhost, round_trip)[0] == b"over the wire"


def test_every_client_portal_builds_from_a_rediss_url_trusts_its_ca(
    tls_redis: PrivateRedis, certificates: Certificates, settings: Any
) -> None:
    settings.REDIS_URL = tls_url(tls_redis, str(certificates.ca))
    portal_redis.reset_clients()
    try:
        sync = portal_redis.sync_redis()
        assert sync is not None
        sync.set("conformance", "sync")

        async def main() -> tuple[object, object]:
            hot, plain = portal_redis.hot_redis(), portal_redis.async_redis()
            assert hot is not None and plain is not None
            try:
                return await hot.get("conformance"), await plain.get("conformance")
            finally:
                await portal_redis.aclose_clients()

        assert asyncio.run(main()) == (b"sync", b"sync")
    finally:
        portal_redis.reset_clients()


def test_an_unknown_tls_option_in_the_url_is_refused_by_name(certificates: Certificates) -> None:
    with pytest.raises(ValueError, match="ssl_ca_file"):
        PipelinedRedis(f"rediss://127.0.0.1:6380/0?ssl_ca_file={certificates.ca}")


@pytest.mark.parametrize("kind", sorted(CLIENTS))
@pytest.mark.parametrize(
    ("credentials", "user"),
    [
        (":door-pass", b"default"),
        ("default:door-pass", b"default"),
        (f"portal:{quote('s3cr:et@/x', safe='')}", b"portal"),  # an ACL user; its password percent-encoded
    ],
)
def test_password_and_acl_user_from_the_url(kind: str, credentials: str, user: bytes, auth_redis: PrivateRedis) -> None:
    value, whoami = run(CLIENTS[kind], f"redis://{credentials}@127.0.0.1:{auth_redis.port}/0", round_trip)
    assert (value, whoami) == (b"over the wire", user)


@pytest.mark.parametrize("kind", sorted(CLIENTS))
@pytest.mark.parametrize("credentials", [":not-the-door-pass", "portal:not-the-secret", "nobody:door-pass"])
def test_a_wrong_password_is_refused_and_the_error_does_not_carry_it(
    kind: str, credentials: str, auth_redis: PrivateRedis
) -> None:
    with pytest.raises(rexc.AuthenticationError) as refused:
        run(CLIENTS[kind], f"redis://{credentials}@127.0.0.1:{auth_redis.port}/0", round_trip)
    message = f"{refused.value} {refused.value!r}"
    assert "invalid username-password pair" in message
    password = credentials.split(":", 1)[1]
    assert password not in message


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_no_password_where_one_is_required_is_an_authentication_error(kind: str, auth_redis: PrivateRedis) -> None:
    with pytest.raises(rexc.AuthenticationError, match=r"(?i)authenticat"):
        run(CLIENTS[kind], f"redis://127.0.0.1:{auth_redis.port}/0", round_trip)


def test_redis_py_sync_client_uses_the_acl_user_too(auth_redis: PrivateRedis) -> None:
    client = redis.Redis.from_url(f"redis://portal:{quote('s3cr:et@/x', safe='')}@127.0.0.1:{auth_redis.port}/0")
    try:
        assert client.acl_whoami() == "portal"
    finally:
        client.close()


def test_celerys_broker_and_result_backend_take_the_same_rediss_url(
    tls_redis: PrivateRedis, certificates: Certificates
) -> None:
    """REDIS_URL is Celery's broker and result backend too (portal/settings.py). Celery's backend refuses a rediss://
    URL without `ssl_cert_reqs`, which is why docs/deployment.md's example carries `ssl_cert_reqs=required`."""
    from celery import Celery
    from celery.backends.redis import RedisBackend
    from kombu import Connection

    url = tls_url(tls_redis, str(certificates.ca)) + "&ssl_cert_reqs=required"
    backend = RedisBackend(url=url, app=Celery(set_as_current=False))
    backend.set("conformance-celery", b"stored")
    assert backend.get("conformance-celery") == b"stored"
    with Connection(url, connect_timeout=2) as broker:
        queue = broker.SimpleQueue("conformance-queue")
        queue.put({"over": "tls"})
        message = queue.get(timeout=2)
        message.ack()
        queue.close()
    assert message.payload == {"over": "tls"}
    for kind in CLIENTS:  # the portal's own clients take the option as well
        assert run(CLIENTS[kind], url, round_trip)[0] == b"over the wire"
