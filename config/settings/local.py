"""Local development and the embedded default (`make run`)."""

from django.core.management.utils import get_random_secret_key

from .base import *
from .base import SECRET_KEY, VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)


def _local_secret_key() -> str:
    """A generated key kept under var/ so sessions survive restarts; never used in production."""
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = get_random_secret_key()
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = SECRET_KEY or _local_secret_key()
