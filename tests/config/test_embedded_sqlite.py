"""``make run`` without any settings: the embedded SQLite database loads the demo through the real pipeline
and the coordinator's search works on it, recording what it lists.

The rest of the suite runs on PostgreSQL, where statements written for it (arrays, LATERAL, COPY) are at
home; this runs the demo's own commands in a fresh process on a fresh SQLite file, so that a statement
SQLite cannot run shows up here as a quarantined payload or a failed search.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

# Run inside ``manage.py shell``: what the pipeline kept, and what searches of one linked person find.
_CHECK = """
import json
from datetime import date
from django.contrib.auth.models import User
from patients.models import InboundPayload, Patient, PatientLink, SourceIdentifier
from core.audit import phi_access_context
from core.models import AccessEvent
from patients.selectors import golden_patient_search

user = User.objects.create_superuser("sqlite-check", password="x-long-enough-password")
linked = (
    Patient.objects.filter(is_active=True, links__source_patient__source__slug="crm")
    .filter(links__source_patient__source__slug="hospital-ehr")
    .exclude(phone="")
    .order_by("pk")
    .first()
)
quarantined = list(InboundPayload.objects.filter(status="quarantined").values_list("error", flat=True)[:5])
if linked is None:
    print(json.dumps({"quarantined": quarantined, "patient": None}))
    raise SystemExit
record = linked.links.get(source_patient__source__slug="hospital-ehr").source_patient
identifier = SourceIdentifier.objects.filter(
    resource_type="Patient", source_id=record.source_id, source_record_id=record.source_record_id
).first()
given, family = linked.given_names.split()[0], linked.family_name
typo = family[:-2] + family[-1] + family[-2]  # the last two letters swapped
national = linked.phone[2:]  # +1 dropped: the number as a form would hold it
queries = {
    "typo": f"{given} {typo}",
    "family": family,
    "phone": f"({national[:3]}) {national[3:6]}-{national[6:]}",
    "identifier": identifier.value,
}
found = {
    kind: [
        str(hit.patient.external_id)
        for hit in golden_patient_search(
            user=user, query=text, record=phi_access_context(purpose=kind, actor=user, action="search")
        )
    ]
    for kind, text in queries.items()
}
found["birth date"] = [
    str(hit.patient.external_id)
    for hit in golden_patient_search(
        user=user, query="", birth_date=linked.birth_date,
        record=phi_access_context(purpose="birth date", actor=user, action="search"),
    )
]
recorded = {
    kind: sorted(AccessEvent.objects.filter(purpose=kind).values_list("patient_ref", flat=True))
    for kind in found
}
sources = golden_patient_search(user=user, query=f"{given} {family}")[0].sources
print(json.dumps({
    "payloads": InboundPayload.objects.count(),
    "quarantined": quarantined,
    "links": PatientLink.objects.count(),
    "patient": str(linked.external_id),
    "queries": queries,
    "found": found,
    "recorded": recorded,
    "sources": sorted(sources),
}))
"""


def _manage(env: dict[str, str], *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, f"manage.py {arguments[0]}: {result.stderr[-3000:]}"
    return result.stdout


def test_the_embedded_sqlite_database_loads_the_demo_and_finds_its_patients(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "CELERY_", "DJANGO_", "CONCORD_"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'concord.sqlite3'}",
        "LOG_LEVEL": "WARNING",
    }
    _manage(env, "migrate", "--no-input", "-v0")
    _manage(env, "load_demo", "--synthea-dir", str(tmp_path / "absent"), "--people", "12")

    report = json.loads(_manage(env, "shell", "-c", _CHECK).strip().splitlines()[-1])

    assert report["quarantined"] == []
    assert report["patient"] is not None, "no person linked across the CRM and the hospital EHR"
    assert report["payloads"] >= 3
    assert report["links"] > 12  # the EHRs and the CRM share people: records were linked
    assert {"crm", "hospital-ehr"} <= set(report["sources"])
    for kind, found in report["found"].items():
        assert report["patient"] in found, (kind, report["queries"].get(kind), found)
        assert report["recorded"][kind] == sorted(found), kind  # each patient listed, recorded as read
