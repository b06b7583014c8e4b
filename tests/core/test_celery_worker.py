"""A Celery task travels through a real Redis broker to a real worker process started here."""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_queue() -> Iterator[str]:
    """Start ``celery worker`` on a queue of its own, stop it afterwards."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": settings.REDIS_TEST_URL,
        "CELERY_RESULT_BACKEND": settings.REDIS_TEST_URL,
    }
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool=solo", "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--queues", queue, "--hostname", f"{queue}@%h", "--loglevel", "WARNING",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield queue
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        if worker.returncode not in (0, -signal.SIGTERM):
            print(output)


@pytest.mark.redis
def test_task_runs_in_a_real_worker_through_redis(worker_queue: str) -> None:
    client = Celery(
        "concord-test-client",
        broker=settings.REDIS_TEST_URL,
        backend=settings.REDIS_TEST_URL,
        set_as_current=False,
    )
    token = uuid.uuid4().hex

    result = client.send_task("core.worker_ping", args=[token], queue=worker_queue)
    answer = result.get(timeout=60)

    assert answer["token"] == token
    assert answer["pid"] != os.getpid()
    assert result.status == "SUCCESS"
    client.close()


def test_the_embedded_default_runs_tasks_eagerly() -> None:
    from core.tasks import worker_ping

    answer = worker_ping.delay("inline").get(timeout=1)

    assert settings.CELERY_TASK_ALWAYS_EAGER is True
    assert answer["token"] == "inline"
    assert answer["pid"] == os.getpid()
