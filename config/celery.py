"""The Celery app. With no broker configured (embedded default) tasks run eagerly in-process."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_: object) -> None:
    """Move everything loaded at start-up (Django, the FHIR models) out of the garbage collector's sight.

    Ingest allocates millions of short-lived objects; full collections would otherwise rescan all of
    those long-lived ones every time.
    """
    gc.freeze()
