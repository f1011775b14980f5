"""Settings for Cortensor Portal, read from the environment (see README "Configuration").

Two profiles: `development` (the default: DEBUG on, SQLite, console email) and `production` (PORTAL_PROFILE=production:
DEBUG off, a real SECRET_KEY required, HTTPS-only cookies and HSTS, so `manage.py check --deploy` is clean).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from portal.env import (
    env_bool,
    env_choice,
    env_database,
    env_file,
    env_float,
    env_int,
    env_int_list,
    env_list,
    env_networks,
    env_slug,
    env_str,
    env_url,
    mailer_from_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

PROFILE = env_choice("PORTAL_PROFILE", "development", ("development", "production"))
PRODUCTION = PROFILE == "production"

_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", "" if PRODUCTION else _DEV_SECRET_KEY)
if PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY == _DEV_SECRET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters in production "
        "(python -c 'import secrets; print(secrets.token_urlsafe(64))')"
    )

DEBUG = env_bool("DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when PORTAL_PROFILE=production")

PORTAL_BASE_URL = env_url("PORTAL_BASE_URL", "http://127.0.0.1:8000")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list this site's host names in production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [PORTAL_BASE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "accounts",
    "apikeys",
    "billing",
    "routing",
    "metering",
    "gateway",
    "portal",
]

MIDDLEWARE = [
    "portal.request_context.RequestIdMiddleware",  # first, so every line logged for a request carries its id
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "portal.context_processors.portal",
                "accounts.context_processors.organizations",
            ],
        },
    },
]

# Durable state. Default: a SQLite file beside manage.py, for the embedded demo only.
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'portal.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Fast state. No REDIS_URL = embedded mode: in-process fast state and Celery tasks run eagerly.
REDIS_URL = env_str("REDIS_URL", "").strip()
if REDIS_URL:
    env_url("REDIS_URL", REDIS_URL, schemes=("redis", "rediss", "unix"))
EMBEDDED = not REDIS_URL

CACHES: dict[str, dict[str, object]]
if EMBEDDED:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portal",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS: list[dict[str, object]] = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"  # the dashboard of the organization worked in
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Email accounts (django-allauth). An email address must be verified before it signs in, so sign-up can answer the
# same for a taken address as for a new one (allauth's enumeration prevention: the owner gets a mail instead).
# docs/accounts.md tells the whole story.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Cortensor Portal] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_SESSION_REMEMBER = None
# allauth's defaults (login 30/m/ip, signup 20/m/ip, ...) except:
# - failed logins: per client address, and per account *from that address* (the adapter makes the key the pair), so
#   guessing from one network never locks the owner out from theirs;
# - "already registered" mails to an address that someone tries to sign up again (at most 3 an hour per address);
# - Sign-In with Ethereum: challenges are stored nonces, verifications are sign-in attempts, and each new wallet is
#   a new account (an organization with an allowance), so new wallets are limited per client address; a known
#   wallet signing in again is never counted.
SIWE_SIGNUPS_PER_HOUR = env_int("SIWE_SIGNUPS_PER_HOUR", 5, minimum=1)
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,60/h/ip,5/5m/key",
    "account_exists_mail": "3/h/key",
    "siwe_challenge": "30/m/ip",
    "siwe_verify": "20/m/ip",
    "siwe_signup": f"{SIWE_SIGNUPS_PER_HOUR}/h/ip",
}

# Sign-In with Ethereum (EIP-4361): the chains a message may name, and how long a challenge is valid.
SIWE_ALLOWED_CHAIN_IDS = env_int_list("SIWE_ALLOWED_CHAIN_IDS", [1, 10, 137, 8453, 42161, 421614])
SIWE_NONCE_TTL_SECONDS = env_int("SIWE_NONCE_TTL_SECONDS", 600, minimum=30, maximum=3600)
# A wallet costs nothing to make, an email address must be proved: an account with a wallet and no verified email
# starts on this plan (a slug; unset = the default plan, like everyone) and moves to the default plan when it
# verifies an address (billing/starting_plan.py).
SIWE_WALLET_ONLY_PLAN = env_slug("SIWE_WALLET_ONLY_PLAN")

# Organization invitations: how long an emailed link stays valid.
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7, minimum=1, maximum=90)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Development serves static files straight from the app folders; production from collectstatic's STATIC_ROOT.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG
if not PRODUCTION:
    warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Email: console by default so the verification link shows in the terminal during development. EMAIL_URL selects
# SMTP: smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS).
EMAIL_URL = env_str("EMAIL_URL", "").strip()
if PRODUCTION and not EMAIL_URL:
    raise ImproperlyConfigured("EMAIL_URL must name an SMTP server in production (verification mail must go out)")
MAILERS = {
    "default": mailer_from_url("EMAIL_URL", EMAIL_URL)
    if EMAIL_URL
    else {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Cortensor Portal <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security. Production: HTTPS only; the proxy in front terminates TLS and sets X-Forwarded-Proto.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content Security Policy (Django's own middleware): only this site's scripts and styles, nothing framed, forms post
# here only. Pages need no inline script; the few that do carry the per-request nonce.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    # The load balancer's health probe arrives over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Celery: broker and results on Redis; without Redis tasks run in-process (embedded mode).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = EMBEDDED
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Serving (portal/serving.py, gunicorn's worker class): deadlines for a request's head and body, so a client that
# trickles bytes is closed instead of holding a connection, and the connections one worker keeps open at most.
SERVER_HEADER_TIMEOUT_SECONDS = env_float("SERVER_HEADER_TIMEOUT_SECONDS", 10.0, minimum=0.5)
SERVER_BODY_TIMEOUT_SECONDS = env_float("SERVER_BODY_TIMEOUT_SECONDS", 30.0, minimum=0.5)
SERVER_MAX_CONNECTIONS = env_int("SERVER_MAX_CONNECTIONS", 1000, minimum=1)

# The proxies in front whose X-Forwarded-For is believed (portal/client_address.py): addresses or networks. Empty, the
# connection's peer is the client and the header is never read; the proxy must overwrite it (docs/deployment.md).
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", [])

# Gateway (the /v1 hot path). Timeouts in seconds.
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 1_048_576, minimum=1024)
GATEWAY_CONNECT_TIMEOUT = env_float("GATEWAY_CONNECT_TIMEOUT", 2.0, minimum=0.05)
GATEWAY_FIRST_BYTE_TIMEOUT = env_float("GATEWAY_FIRST_BYTE_TIMEOUT", 60.0, minimum=0.05)
GATEWAY_TOTAL_TIMEOUT = env_float("GATEWAY_TOTAL_TIMEOUT", 300.0, minimum=0.1)
GATEWAY_UPSTREAM_POOL_SIZE = env_int("GATEWAY_UPSTREAM_POOL_SIZE", 256, minimum=1)
# Idle upstream connections are closed after this long. It must stay below the upstreams' own idle timeout (uvicorn
# and Node close after 5 s): reusing a connection the server has just closed fails a request that was never served.
GATEWAY_UPSTREAM_KEEPALIVE_SECONDS = env_float("GATEWAY_UPSTREAM_KEEPALIVE_SECONDS", 4.0, minimum=0.0)
# A PEM file of certificate authorities the gateway trusts for https targets besides the system's: targets whose
# certificates a private CA signed. Unset, only the system's CAs are trusted.
GATEWAY_UPSTREAM_CA_FILE = env_file("GATEWAY_UPSTREAM_CA_FILE")

# Key scans: invalid API keys from one client address within a rolling window before that address gets 429.
GATEWAY_INVALID_KEY_LIMIT = env_int("GATEWAY_INVALID_KEY_LIMIT", 30, minimum=1)
GATEWAY_INVALID_KEY_WINDOW_SECONDS = env_float("GATEWAY_INVALID_KEY_WINDOW_SECONDS", 60.0, minimum=1.0)
# The gateway's Prometheus metrics at /metrics: served only when this is set, to `Authorization: Bearer <token>`.
GATEWAY_METRICS_TOKEN = env_str("GATEWAY_METRICS_TOKEN", "")

# Admission (billing/admission): what to do when the fast state (Redis) cannot be reached.
ADMISSION_ON_UNAVAILABLE = env_choice("ADMISSION_ON_UNAVAILABLE", "fail_closed", ("fail_closed", "fail_open"))

# Routing (routing/): passive health ejection and active probes.
ROUTING_EJECT_AFTER_FAILURES = env_int("ROUTING_EJECT_AFTER_FAILURES", 3, minimum=1)
ROUTING_EJECT_SECONDS = env_float("ROUTING_EJECT_SECONDS", 30.0, minimum=0.1)
ROUTING_PROBE_INTERVAL_SECONDS = env_int("ROUTING_PROBE_INTERVAL_SECONDS", 15, minimum=1)
ROUTING_PROBE_TIMEOUT_SECONDS = env_float("ROUTING_PROBE_TIMEOUT_SECONDS", 3.0, minimum=0.1)

# Metering: the drain from the usage stream into the ledger, reconciliation and retention (docs/metering.md).
# Stream entries read per batch (one database transaction each). Measured in docs/metering.md: below ~2,000 the
# per-batch costs dominate, and more of a request's events straddle two batches.
METERING_BATCH_SIZE = env_int("METERING_BATCH_SIZE", 2500, minimum=1)
# Entries another consumer has held unacknowledged this long are taken over (that consumer is presumed dead). Well
# above a batch's worst-case processing time, so a slow but live consumer is not robbed.
METERING_CLAIM_IDLE_SECONDS = env_int("METERING_CLAIM_IDLE_SECONDS", 60, minimum=1)
# How long one drain task keeps reading before it returns (beat starts the next one every second).
METERING_DRAIN_BUDGET_SECONDS = env_float("METERING_DRAIN_BUDGET_SECONDS", 10.0, minimum=0.1)
# Where entries that are not valid usage events go, acknowledged, for an operator to inspect; and its approximate cap.
METERING_DEAD_STREAM = env_str("METERING_DEAD_STREAM", "usage:dead").strip()
if not METERING_DEAD_STREAM or METERING_DEAD_STREAM == "usage:events":
    raise ImproperlyConfigured("METERING_DEAD_STREAM must name a Redis stream other than usage:events, e.g. usage:dead")
METERING_DEAD_STREAM_MAXLEN = env_int("METERING_DEAD_STREAM_MAXLEN", 100_000, minimum=1)
# An entry read this many times without being written (its batch kept failing) is then written alone, and
# dead-lettered if that fails too while the database answers.
METERING_MAX_DELIVERIES = env_int("METERING_MAX_DELIVERIES", 5, minimum=1)
# An admitted request without a completion GATEWAY_TOTAL_TIMEOUT plus this margin after admission is closed as
# `unknown`: the margin is for the completion event to travel through the stream.
METERING_STALE_MARGIN_SECONDS = env_int("METERING_STALE_MARGIN_SECONDS", 120, minimum=0)
# Whether requests closed as `unknown` give their allowance units back (default: no, see docs/metering.md).
METERING_REFUND_UNKNOWN = env_bool("METERING_REFUND_UNKNOWN", False)
# Raw usage events older than this are pruned; roll-ups are kept.
METERING_RETENTION_DAYS = env_int("METERING_RETENTION_DAYS", 90, minimum=1)
# The period the periodic reconciliation reports on.
METERING_RECONCILE_HOURS = env_int("METERING_RECONCILE_HOURS", 24, minimum=1)
# How stale a key's last_used_at may be: a key written this recently by the same worker is not written again.
METERING_LAST_USED_RESOLUTION_SECONDS = env_int("METERING_LAST_USED_RESOLUTION_SECONDS", 60, minimum=0)

# Billing: how long after a usage period ends its usage is charged. Metering must have closed its stale requests (the
# gateway timeout plus a margin, minutes) and ingested late events before the roll-ups are read.
BILLING_USAGE_SETTLE_SECONDS = env_int("BILLING_USAGE_SETTLE_SECONDS", 3600, minimum=0)

# The key the sandbox router (`manage.py run_sandbox_router`, a stand-in for a Cortensor router) accepts.
SANDBOX_ROUTER_KEY = env_str("SANDBOX_ROUTER_KEY", "").strip() or "sandbox-router-key"

CELERY_BEAT_SCHEDULE = {
    "routing-probe-targets": {
        "task": "routing.tasks.probe_targets",
        "schedule": float(ROUTING_PROBE_INTERVAL_SECONDS),
    },
    "metering-drain-usage": {"task": "metering.tasks.drain_usage_stream", "schedule": 1.0, "options": {"expires": 10}},
    # Invalidations Redis could not take when their change committed (portal/outbox.py): a revoke made during an
    # outage reaches the workers and the shared key cache within about a second of Redis coming back.
    "portal-deliver-invalidations": {
        "task": "portal.tasks.deliver_invalidations",
        "schedule": 1.0,
        "options": {"expires": 10},
    },
    "metering-reconcile": {"task": "metering.tasks.reconcile_usage", "schedule": 300.0, "options": {"expires": 240}},
    "metering-prune": {"task": "metering.tasks.prune_usage_events", "schedule": crontab(hour=3, minute=17)},
    # Usage charged into the billing ledger; the task keeps its first name but is defined in metering/tasks.py.
    "billing-ledger-close-usage-periods": {
        "task": "billing.tasks.ledger_close_usage_periods",
        "schedule": crontab(hour=1, minute=30),
    },
}

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
# json: one object per line with the request id (portal/logs.py), for a log pipeline; plain: for people.
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if PRODUCTION else "plain", ("plain", "json"))
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "portal.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default config gives "django" a handler of its own (console, DEBUG only): without this every such
        # line came out twice in development, and once unformatted among the JSON lines.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},  # one line per request made; noise in workers and tests
        "httpcore": {"level": "WARNING"},
    },
}
# Celery workers log through LOGGING above instead of replacing the root logger's handlers with their own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
if LOG_FORMAT == "json":
    # The servers' own loggers keep their own plain handlers unless told otherwise: every line in one format.
    for _name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access"):
        LOGGING["loggers"][_name] = {"handlers": ["console"], "level": "INFO", "propagate": False}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only, read with limits: too deep, NUL or a lone surrogate anywhere is a 400 naming the value's path.
    "DEFAULT_PARSER_CLASSES": ["portal.parsers.CheckedJSONParser"],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Cortensor Portal management API",
    "DESCRIPTION": "Manage API keys and read usage. Authenticate with a browser session or a manage-scoped key.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "apikeys.schema.error_responses"],
}
