from celery import shared_task

from patients.ingest.processing import payload_process


@shared_task(name="patients.process_payload", acks_late=True, time_limit=600, soft_time_limit=540)
def process_payload(payload_id: int) -> str:
    """Process one landed payload. Idempotent: an accepted payload is not processed again."""
    return payload_process(payload_id=payload_id).payload.status
