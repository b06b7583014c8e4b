import os
import socket

from celery import shared_task


@shared_task(name="core.worker_ping", time_limit=30, soft_time_limit=20)
def worker_ping(token: str) -> dict[str, object]:
    """Answer with the token and where it ran, so an operator (or a test) can see a real worker respond."""
    return {"token": token, "hostname": socket.gethostname(), "pid": os.getpid()}
