"""Domain events detected while storing entries, recorded in the outbox in the storage transaction.

Storage reports what it created or replaced (``StoredChange``: the new resource and, for an update, the
version it replaced); this module decides which of those changes are events:

- ``patient.admitted``: an inpatient, emergency, acute or observation Encounter stored arrived, triaged or
  in-progress, new or coming from planned (or from another class, e.g. an outpatient visit turned admission);
- ``patient.discharged``: an inpatient, emergency, acute or observation Encounter becoming finished (new
  with an end time, or from another status);
- ``appointment.booked``: an Appointment stored booked, pending or proposed, new or from another status;
- ``contact.changed``: a newer version of a source patient whose phones, emails or addresses differ.

Payloads carry ids, codes and times only; ``contact.changed`` says which kinds changed, never the values.
The dedupe key (the visit's start or end time, else the record version) keeps a re-send of the same facts
from recording an event twice.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from core.outbox import OutboxEventDraft
from patients.ingest.extract import patient_columns, resource_patient_id
from patients.models import InboundPayload, Source

JSON = dict[str, Any]

# The resource types whose changes can be events; storage reports changes of these only.
EVENT_RESOURCE_TYPES = frozenset({"Patient", "Encounter", "Appointment"})

ADMISSION_CLASSES = frozenset({"IMP", "EMER", "ACUTE", "OBSENC"})
ADMITTED_STATUSES = frozenset({"arrived", "triaged", "in-progress"})
# Statuses an admission can start from; from finished, cancelled or on leave it is no new admission.
_BEFORE_ADMISSION = frozenset({"planned", *ADMITTED_STATUSES})
BOOKED_STATUSES = frozenset({"booked", "pending", "proposed"})
_PHONE_SYSTEMS = frozenset({"phone", "sms"})


@dataclass(frozen=True, slots=True)
class StoredChange:
    """A record storage created or replaced: its new version, and the resource it replaced (None if new)."""

    resource_type: str
    source_record_id: str
    version: int
    resource: JSON
    previous: JSON | None


def stored_change_events(
    *, source: Source, payload: InboundPayload, changes: list[StoredChange]
) -> list[OutboxEventDraft]:
    events: list[OutboxEventDraft] = []
    for change in changes:
        if change.resource_type == "Encounter":
            events.extend(_encounter_events(source=source, payload=payload, change=change))
        elif change.resource_type == "Appointment":
            events.extend(_appointment_events(source=source, payload=payload, change=change))
        elif change.resource_type == "Patient":
            events.extend(_patient_events(source=source, payload=payload, change=change))
    return events


def _draft(
    event_type: str,
    *,
    source: Source,
    payload: InboundPayload,
    change: StoredChange,
    dedupe_key: str,
    data: JSON,
    occurred_at: datetime | None,
) -> OutboxEventDraft:
    if change.resource_type == "Patient":
        aggregate_type, patient_id = "patients.sourcepatient", change.source_record_id
    else:
        aggregate_type = "patients.sourceresource"
        patient_id = resource_patient_id(change.resource) or _participant_patient_id(change.resource)
    return OutboxEventDraft(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_ref=f"{source.slug}/{change.resource_type}/{change.source_record_id}",
        dedupe_key=dedupe_key[:100],
        patient_ref=f"{source.slug}/Patient/{patient_id}" if patient_id else "",
        payload={
            "source": source.slug,
            "payload_id": str(payload.external_id),
            "resource_type": change.resource_type,
            "resource_id": change.source_record_id,
            "version": change.version,
            **data,
        },
        occurred_at=occurred_at,
    )


def _participant_patient_id(resource: JSON) -> str:
    """The patient among the participants (an Appointment names its patient there, not in a subject)."""
    participants = resource.get("participant")
    for participant in participants if isinstance(participants, list) else []:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        reference = actor.get("reference") if isinstance(actor, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/").split("/_history", 1)[0][:128]
    return ""


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) <= 10:
        return None
    try:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _code(value: Any) -> str:
    """The code of a Coding (R4 Encounter.class) or of the first coding of a CodeableConcept (or a list of them)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, dict):
        return ""
    if isinstance(value.get("code"), str):
        return str(value["code"])
    codings = value.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return ""


def _status(resource: JSON | None) -> str:
    status = (resource or {}).get("status")
    return status if isinstance(status, str) else ""


def _period(resource: JSON) -> tuple[str, str]:
    period = resource.get("period")
    if not isinstance(period, dict):
        return "", ""
    start, end = period.get("start"), period.get("end")
    return (start if isinstance(start, str) else ""), (end if isinstance(end, str) else "")


def _is_admission(resource: JSON) -> bool:
    return _code(resource.get("class")) in ADMISSION_CLASSES and _status(resource) in ADMITTED_STATUSES


def _encounter_events(
    *, source: Source, payload: InboundPayload, change: StoredChange
) -> list[OutboxEventDraft]:
    resource, previous = change.resource, change.previous
    status, start, end = _status(resource), *_period(resource)
    encounter = {
        "encounter_class": _code(resource.get("class")),
        "status": status,
        "period_start": start or None,
    }
    events = []
    admitted = _is_admission(resource) and (
        previous is None or (not _is_admission(previous) and _status(previous) in _BEFORE_ADMISSION)
    )
    if admitted:
        events.append(
            _draft(
                "patient.admitted",
                source=source,
                payload=payload,
                change=change,
                dedupe_key=f"start:{start}" if start else f"version:{change.version}",
                data=encounter,
                occurred_at=_instant(start),
            )
        )
    # Only stays end in a discharge: a finished outpatient visit is not one, and outreach after discharge
    # (the reason this event exists) must not fire for every clinic appointment.
    discharged = (
        _code(resource.get("class")) in ADMISSION_CLASSES
        and status == "finished"
        and (bool(end) if previous is None else _status(previous) != "finished")
    )
    if discharged:
        hospitalization = resource.get("hospitalization")
        disposition = (
            hospitalization.get("dischargeDisposition") if isinstance(hospitalization, dict) else None
        )
        events.append(
            _draft(
                "patient.discharged",
                source=source,
                payload=payload,
                change=change,
                dedupe_key=f"end:{end}" if end else f"version:{change.version}",
                data={
                    **encounter,
                    "period_end": end or None,
                    "discharge_disposition": _code(disposition) or None,
                },
                occurred_at=_instant(end),
            )
        )
    return events


def _appointment_events(
    *, source: Source, payload: InboundPayload, change: StoredChange
) -> list[OutboxEventDraft]:
    resource, previous = change.resource, change.previous
    status = _status(resource)
    if status not in BOOKED_STATUSES or (previous is not None and _status(previous) in BOOKED_STATUSES):
        return []
    start, end = resource.get("start"), resource.get("end")
    return [
        _draft(
            "appointment.booked",
            source=source,
            payload=payload,
            change=change,
            dedupe_key=f"version:{change.version}",
            data={
                "status": status,
                "start": start if isinstance(start, str) else None,
                "end": end if isinstance(end, str) else None,
                "appointment_type": _code(resource.get("appointmentType")) or None,
            },
            occurred_at=_instant(resource.get("created")),
        )
    ]


def _telecom(resource: JSON, systems: frozenset[str]) -> list[Any]:
    items = resource.get("telecom")
    return (
        [item for item in items if isinstance(item, dict) and item.get("system") in systems]
        if isinstance(items, list)
        else []
    )


def _patient_events(
    *, source: Source, payload: InboundPayload, change: StoredChange
) -> list[OutboxEventDraft]:
    resource, previous = change.resource, change.previous
    if previous is None:
        return []
    columns, previous_columns = patient_columns(resource), patient_columns(previous)
    changed = []
    if columns["phone"] != previous_columns["phone"] or _telecom(resource, _PHONE_SYSTEMS) != _telecom(
        previous, _PHONE_SYSTEMS
    ):
        changed.append("phone")
    email = frozenset({"email"})
    if columns["email"] != previous_columns["email"] or _telecom(resource, email) != _telecom(
        previous, email
    ):
        changed.append("email")
    if columns["postal_code"] != previous_columns["postal_code"] or resource.get("address") != previous.get(
        "address"
    ):
        changed.append("address")
    if not changed:
        return []
    return [
        _draft(
            "contact.changed",
            source=source,
            payload=payload,
            change=change,
            dedupe_key=f"version:{change.version}",
            data={"changed": changed},
            occurred_at=columns["source_updated_at"],
        )
    ]
