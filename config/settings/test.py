"""Test settings: PostgreSQL when reachable (the real database), else SQLite for the fast unit layer.

Tests that need PostgreSQL or Redis are marked; they skip with a visible reason when the service is
unreachable, and fail instead when CONCORD_REQUIRE_SERVICES=1 (CI).
"""

from config.services import tcp_reachable

from .base import *
from .base import BASE_DIR, database_configure, env

DEBUG = False
SECRET_KEY = "test-only-secret-key-not-for-production"  # noqa: S105
ALLOWED_HOSTS = ["*"]

POSTGRES_TEST_URL = env.str("CONCORD_TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/concord")
REDIS_TEST_URL = env.str("CONCORD_TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")

if tcp_reachable(POSTGRES_TEST_URL):
    DATABASES = {"default": database_configure(env.db_url_config(POSTGRES_TEST_URL))}
else:
    DATABASES = {
        "default": database_configure(env.db_url_config(f"sqlite:///{BASE_DIR / 'var' / 'test.sqlite3'}"))
    }
DATABASES["default"]["TEST"] = {"NAME": env.str("CONCORD_TEST_DATABASE_NAME", default="test_concord")}

# Tests run tasks eagerly unless a test starts a real worker against REDIS_TEST_URL itself.
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Static files come straight from the finders; no collectstatic in tests.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
