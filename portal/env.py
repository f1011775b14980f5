"""Typed readers for settings that come from the environment.

Each helper refuses a value it cannot parse with `ImproperlyConfigured` naming the variable, so a typo in a
deployment fails at start-up instead of running with a silently different setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get(name)


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool = False, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}; got {number}")
    return number


def env_float(
    name: str, default: float, *, minimum: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number; got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number; got {value!r}")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; blanks around items are dropped, empty items refused."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if value.strip() == "":
        return []
    if any(item == "" for item in items):
        raise ImproperlyConfigured(f"{name} has an empty item in {value!r}; separate items with single commas")
    return items


def env_choice(name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    value = value.strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def env_slug(name: str, *, max_length: int = 40, environ: Mapping[str, str] | None = None) -> str | None:
    """A slug (letters, digits, `-`, `_`) naming something such as a plan, or None when unset or empty."""
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if len(value) > max_length or not re.fullmatch(r"[-a-zA-Z0-9_]+", value):
        raise ImproperlyConfigured(
            f"{name} must be a slug of letters, digits, '-' and '_' (at most {max_length}); got {value!r}"
        )
    return value


def env_file(name: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The path of a file that must exist and be readable now (a CA bundle, say), or None when unset or empty."""
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return None
    path = value.strip()
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ImproperlyConfigured(f"{name} must name a readable file; {path!r} is not one")
    return path


def env_url(
    name: str,
    default: str,
    *,
    schemes: tuple[str, ...] = ("http", "https"),
    environ: Mapping[str, str] | None = None,
) -> str:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        value = default
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ImproperlyConfigured(f"{name} must be a URL starting with {' or '.join(schemes)}://; got {value!r}")
    return value.rstrip("/")


@dataclass(frozen=True)
class DatabaseSettings:
    engine: str
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def as_django(self) -> dict[str, object]:
        config: dict[str, object] = {"ENGINE": self.engine, "NAME": self.name}
        if self.engine == "django.db.backends.postgresql":
            config.update(USER=self.user, PASSWORD=self.password, HOST=self.host, PORT=self.port)
            config["OPTIONS"] = dict(self.options)
            # Persistent connections: the portal's sync views reuse them; async code paths close their own.
            config["CONN_MAX_AGE"] = 60
            config["CONN_HEALTH_CHECKS"] = True
        return config


_POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


def parse_database_url(name: str, value: str) -> DatabaseSettings:
    """`postgres://user:pass@host:port/db?sslmode=require` or `sqlite:///relative.db` / `sqlite:////abs.db`."""
    parts = urlsplit(value)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        # sqlite:///db.sqlite3 -> "db.sqlite3" (relative); sqlite:////tmp/x.db -> "/tmp/x.db"
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ImproperlyConfigured(f"{name} names no SQLite file: {value!r} (try sqlite:///portal.sqlite3)")
        return DatabaseSettings(engine="django.db.backends.sqlite3", name=path)
    if parts.scheme in _POSTGRES_SCHEMES:
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not database:
            raise ImproperlyConfigured(
                f"{name} must name a host and a database, e.g. postgres://user@127.0.0.1:5432/portal"
            )
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has a port that is not a number") from None
        return DatabaseSettings(
            engine="django.db.backends.postgresql",
            name=database,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=parts.hostname,
            port=str(port or ""),
            options=tuple(parse_qsl(parts.query)),
        )
    raise ImproperlyConfigured(f"{name} must start with postgres:// or sqlite://; got scheme {parts.scheme!r}")


def env_database(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> dict[str, object]:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        value = default
    return parse_database_url(name, value.strip()).as_django()


def mailer_from_url(name: str, value: str) -> dict[str, object]:
    """A Django MAILERS entry from `smtp://user:pass@host:587` (STARTTLS) or `smtps://user:pass@host:465`."""
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must look like smtp://user:password@host:587 or smtps://...:465")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a port that is not a number") from None
    secure = "use_ssl" if parts.scheme == "smtps" else "use_tls"
    return {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": parts.hostname,
            "port": port,
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            secure: parts.scheme == "smtps" or port == 587,
            "timeout": 10,
        },
    }


def env_networks(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Comma-separated IP addresses or networks (`10.0.0.5`, `10.0.0.0/8`, `2001:db8::/32`), as networks."""
    networks = []
    for item in env_list(name, default, environ=environ):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks such as 10.0.0.5 or 10.0.0.0/8; {item!r} is neither"
            ) from None
    return networks


def env_int_list(name: str, default: list[int], *, environ: Mapping[str, str] | None = None) -> list[int]:
    items = env_list(name, [str(item) for item in default], environ=environ)
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be comma-separated integers; got {items!r}") from None
