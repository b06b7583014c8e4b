"""Complete base settings. Every value that differs between deployments comes from the environment.

The embedded default (no environment at all) is a SQLite file under ``var/`` and Celery tasks running
eagerly in-process. See ``.env.example`` for every variable.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
import plotly
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# A .env file is optional; real deployments set the environment directly.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "guardian",
    "auditlog",
    "core",
    "patients",
    "governance",
    "engagement",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.NoStoreMiddleware",
    "core.sessions.IdleSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "core.sessions.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.navigation",
            ],
        },
    },
]


def database_configure(database: dict[str, Any]) -> dict[str, Any]:
    """Connection settings shared by every mode."""
    database["ATOMIC_REQUESTS"] = False
    database.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    if database["ENGINE"].endswith("postgresql"):
        # Parameters travel apart from the SQL, binary where they can: a landed payload's bytes are
        # sent as they are instead of being escaped into the statement's text.
        options = database.setdefault("OPTIONS", {})
        options.setdefault("server_side_binding", True)
        # A statement a connection runs again is prepared on the server after this many runs, so its plan
        # is not made anew each time (the statements every request makes plan for longer than they run).
        # Empty turns it off, as a connection pooler in transaction mode needs (PgBouncer before 1.21).
        threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
        options.setdefault("prepare_threshold", int(threshold) if threshold else None)
    return database


DATABASES = {
    "default": database_configure(env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'concord.sqlite3'}")),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE) are PostgreSQL's: the embedded SQLite builds them without the extra columns.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTHENTICATION_BACKENDS = [
    "core.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Idle sessions expire: activity pushes the deadline forward, so it measures inactivity. The deadline is
# renewed at most once a minute (core.sessions), not written on every request.
SESSION_IDLE_TIMEOUT_MINUTES = env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=15)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_MINUTES * 60
SESSION_ENGINE = "core.sessions"
SESSION_RENEW_AFTER_SECONDS = 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

# The patient page's rendered record (demographics, badges, clinical part), per golden patient and version of its record
# (patients.page_cache). Local memory of each process: PHI is never written to a shared cache server.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
    "patient_pages": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "patient-pages",
        "TIMEOUT": None,
        "OPTIONS": {"MAX_ENTRIES": env.int("CONCORD_PATIENT_PAGE_CACHE_ENTRIES", default=200)},
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT: Path | None = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js is served from the plotly Python package itself, never from a CDN.
    ("plotly", Path(plotly.__file__).resolve().parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Content-Security-Policy (Django 6). Scripts only from this origin or carrying the per-request nonce;
# style elements need the nonce too; inline style attributes are allowed because plotly.js sets them.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src-elem": [CSP.SELF, CSP.NONCE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Celery: with no broker configured every task runs eagerly in-process (the embedded default).
_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not _BROKER_URL
# Eager tasks never touch a broker; the in-memory transport keeps kombu from looking for one.
CELERY_BROKER_URL = _BROKER_URL or "memory://"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_BROKER_URL or None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TIMEZONE = TIME_ZONE
# How often Celery beat queues a FHIR pull of every active source with fhir_pull connector settings.
CONCORD_FHIR_PULL_INTERVAL_MINUTES = env.int("CONCORD_FHIR_PULL_INTERVAL_MINUTES", default=15)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "fhir-pull-all-sources": {
        "task": "patients.pull_all_sources",
        "schedule": timedelta(minutes=CONCORD_FHIR_PULL_INTERVAL_MINUTES),
    },
}
# Celery's Django fixup closes the database connection around every task unless told to reuse it;
# a new PostgreSQL backend per task (fork, cold catalog caches) costs more than a small task itself.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=500)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# django-guardian: object permissions for staff; anonymous users never get any.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# django-auditlog: write audit rows for every registered model change, with the actor from the request.
AUDITLOG_INCLUDE_ALL_MODELS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

CONCORD_DEMO_PASSWORD = env.str("CONCORD_DEMO_PASSWORD", default="concord-demo-2026")

# Ingestion: payloads larger than this are stored but quarantined instead of parsed.
CONCORD_MAX_PAYLOAD_BYTES = env.int("CONCORD_MAX_PAYLOAD_BYTES", default=50 * 1024 * 1024)
# MLLP listener (manage.py mllp_listen): larger messages are refused (AR); idle connections are closed.
CONCORD_MLLP_MAX_MESSAGE_BYTES = env.int("CONCORD_MLLP_MAX_MESSAGE_BYTES", default=10 * 1024 * 1024)
CONCORD_MLLP_READ_TIMEOUT_SECONDS = env.float("CONCORD_MLLP_READ_TIMEOUT_SECONDS", default=300.0)
