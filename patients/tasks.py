from celery import shared_task

from patients.ingest.processing import payload_process
from patients.models import Source
from patients.pull.errors import PullTransientError
from patients.pull.services import source_pull


@shared_task(name="patients.process_payload", acks_late=True, time_limit=600, soft_time_limit=540)
def process_payload(payload_id: int) -> str:
    """Process one landed payload. Idempotent: an accepted payload is not processed again."""
    return payload_process(payload_id=payload_id).payload.status


@shared_task(
    name="patients.pull_source",
    acks_late=True,
    # A pull stopped by the limit resumes from its checkpoint at the next run.
    time_limit=3600,
    soft_time_limit=3540,
    autoretry_for=(PullTransientError,),
    retry_backoff=60,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=3,
)
def pull_source(source_id: int) -> dict[str, object]:
    """Pull one source's FHIR server from its checkpoints. Idempotent: re-pulled pages are duplicates."""
    source = Source.objects.get(pk=source_id)
    return source_pull(actor=None, source=source).as_dict()


@shared_task(name="patients.pull_all_sources", time_limit=60, soft_time_limit=50)
def pull_all_sources() -> int:
    """Queue one pull per active source with FHIR pull settings. Returns how many were queued."""
    source_ids = list(
        Source.objects.filter(is_active=True, connector_settings__has_key="fhir_pull").values_list(
            "pk", flat=True
        )
    )
    for source_id in source_ids:
        pull_source.delay(source_id)
    return len(source_ids)
