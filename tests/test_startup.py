"""What every process (web worker, Celery worker, manage.py command) loads when Django starts."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_starting_django_loads_neither_splink_nor_pandas() -> None:
    """Only training the match model needs them, and importing them took 0.4 s of each start."""
    probe = (
        "import sys, django; django.setup(); "
        "from django.contrib import admin; admin.autodiscover(); "
        "import patients.matching.services, patients.ingest.processing; "
        "print(','.join(sorted({'splink', 'pandas'} & set(sys.modules))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == ""
