from celery import shared_task

from governance.services import renormalization_run_execute


@shared_task(name="governance.terminology_renormalize", acks_late=True, time_limit=3600, soft_time_limit=3540)
def terminology_renormalize(run_id: int) -> str:
    """Re-normalize the stored resources a new terminology map affects. Idempotent: re-runs change nothing."""
    return renormalization_run_execute(run_id=run_id).status
