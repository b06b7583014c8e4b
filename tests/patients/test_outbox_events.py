"""Domain events recorded in the outbox by ingestion, in the storage transaction, on the real database."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from core.models import OutboxEvent
from core.outbox import OutboxEventDraft, outbox_mark_published, outbox_pending, outbox_record
from patients.models import InboundPayload, Source, SourceResource
from tests.patients.conftest import as_bytes, patient, transaction

Land = Callable[..., InboundPayload]

COMMON_KEYS = {"source", "payload_id", "resource_type", "resource_id", "version"}
ENCOUNTER_KEYS = COMMON_KEYS | {"encounter_class", "status", "period_start"}


def encounter(resource_id: str, *, status: str, class_code: str = "IMP", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": resource_id,
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class_code},
        "subject": {"reference": "Patient/pat-1"},
        **extra,
    }


def appointment(resource_id: str, *, status: str, start: str = "2024-04-02T09:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": resource_id,
        "status": status,
        "start": start,
        "end": "2024-04-02T09:30:00Z",
        "participant": [{"actor": {"reference": "Patient/pat-1"}, "status": "accepted"}],
    }


def events() -> list[tuple[str, str, str]]:
    return list(OutboxEvent.objects.order_by("id").values_list("event_type", "aggregate_ref", "dedupe_key"))


def event(event_type: str) -> OutboxEvent:
    return OutboxEvent.objects.get(event_type=event_type)


def test_an_inpatient_encounter_admitted_then_discharged_records_both_events(
    source: Source, land: Land
) -> None:
    land(source, as_bytes(transaction(patient("pat-1"))))
    admitted = land(
        source,
        as_bytes(encounter("enc-1", status="in-progress", period={"start": "2024-03-01T10:30:00Z"})),
    )
    discharged = land(
        source,
        as_bytes(
            encounter(
                "enc-1",
                status="finished",
                period={"start": "2024-03-01T10:30:00Z", "end": "2024-03-05T08:00:00Z"},
                hospitalization={
                    "dischargeDisposition": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                                "code": "home",
                            }
                        ]
                    }
                },
            )
        ),
    )

    assert events() == [
        ("patient.admitted", "hospital-ehr/Encounter/enc-1", "start:2024-03-01T10:30:00Z"),
        ("patient.discharged", "hospital-ehr/Encounter/enc-1", "end:2024-03-05T08:00:00Z"),
    ]
    admission = event("patient.admitted")
    assert admission.aggregate_type == "patients.sourceresource"
    assert admission.patient_ref == "hospital-ehr/Patient/pat-1"
    assert admission.occurred_at == datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
    assert admission.published_at is None
    assert admission.payload == {
        "source": "hospital-ehr",
        "payload_id": str(admitted.external_id),
        "resource_type": "Encounter",
        "resource_id": "enc-1",
        "version": 1,
        "encounter_class": "IMP",
        "status": "in-progress",
        "period_start": "2024-03-01T10:30:00Z",
    }
    discharge = event("patient.discharged")
    assert discharge.occurred_at == datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert discharge.payload == {
        "source": "hospital-ehr",
        "payload_id": str(discharged.external_id),
        "resource_type": "Encounter",
        "resource_id": "enc-1",
        "version": 2,
        "encounter_class": "IMP",
        "status": "finished",
        "period_start": "2024-03-01T10:30:00Z",
        "period_end": "2024-03-05T08:00:00Z",
        "discharge_disposition": "home",
    }


def test_which_encounters_are_admissions_and_discharges(source: Source, land: Land) -> None:
    land(
        source,
        as_bytes(
            transaction(
                patient("pat-1"),
                encounter("outpatient", status="in-progress", class_code="AMB"),
                encounter("planned", status="planned"),
                encounter("emergency", status="arrived", class_code="EMER"),
                encounter("finished-no-end", status="finished"),
                encounter("old-stay", status="finished", period={"start": "2020-01-01", "end": "2020-01-03"}),
                encounter(
                    "clinic-visit",
                    status="finished",
                    class_code="AMB",
                    period={"start": "2020-02-01T09:00:00Z", "end": "2020-02-01T09:30:00Z"},
                ),  # an outpatient visit ends, but nobody is discharged
            )
        ),
    )
    assert [(event_type, ref) for event_type, ref, _ in events()] == [
        ("patient.admitted", "hospital-ehr/Encounter/emergency"),
        ("patient.discharged", "hospital-ehr/Encounter/old-stay"),
    ]

    land(
        source,
        as_bytes(
            transaction(
                encounter("planned", status="in-progress"),  # planned -> in-progress: an admission
                encounter("emergency", status="in-progress", class_code="EMER"),  # still the same admission
                encounter("outpatient", status="in-progress", class_code="IMP"),  # a visit turned admission
            )
        ),
    )

    assert [(event_type, ref, key) for event_type, ref, key in events()][2:] == [
        ("patient.admitted", "hospital-ehr/Encounter/planned", "version:2"),
        ("patient.admitted", "hospital-ehr/Encounter/outpatient", "version:2"),
    ]
    assert set(event("patient.discharged").payload) == ENCOUNTER_KEYS | {
        "period_end",
        "discharge_disposition",
    }


def test_a_newly_booked_appointment_records_one_event(source: Source, land: Land) -> None:
    land(
        source,
        as_bytes(
            transaction(
                patient("pat-1"),
                appointment("appt-1", status="booked"),
                appointment("appt-2", status="cancelled"),
            )
        ),
    )
    land(source, as_bytes(appointment("appt-1", status="booked", start="2024-04-03T09:00:00Z")))  # moved
    land(source, as_bytes(appointment("appt-2", status="booked")))  # booked again after a cancellation

    assert events() == [
        ("appointment.booked", "hospital-ehr/Appointment/appt-1", "version:1"),
        ("appointment.booked", "hospital-ehr/Appointment/appt-2", "version:2"),
    ]
    booked = OutboxEvent.objects.get(aggregate_ref="hospital-ehr/Appointment/appt-1")
    assert booked.patient_ref == "hospital-ehr/Patient/pat-1"
    assert set(booked.payload) == COMMON_KEYS | {"status", "start", "end", "appointment_type"}
    assert (booked.payload["status"], booked.payload["start"]) == ("booked", "2024-04-02T09:00:00Z")


def test_a_new_patient_version_with_other_contact_details_records_what_kind_changed(
    source: Source, land: Land
) -> None:
    land(source, as_bytes(patient("pat-1")))
    land(
        source,
        as_bytes(patient("pat-1", name=[{"use": "official", "family": "Quigley", "given": ["Alma", "B"]}])),
    )
    assert events() == []  # a name is no contact detail

    land(
        source,
        as_bytes(
            patient(
                "pat-1",
                telecom=[{"system": "phone", "value": "(617) 555-0199", "use": "home"}],
                address=[{"line": ["3 Oak street"], "city": "Boston", "state": "MA", "postalCode": "02110"}],
            )
        ),
    )
    land(
        source,
        as_bytes(
            patient(
                "pat-1",
                telecom=[
                    {"system": "phone", "value": "(617) 555-0199", "use": "home"},
                    {"system": "email", "value": "alma@example.invalid"},
                ],
                address=[{"line": ["3 Oak street"], "city": "Boston", "state": "MA", "postalCode": "02110"}],
            )
        ),
    )

    assert events() == [
        ("contact.changed", "hospital-ehr/Patient/pat-1", "version:3"),
        ("contact.changed", "hospital-ehr/Patient/pat-1", "version:4"),
    ]
    first, second = OutboxEvent.objects.order_by("id")
    assert first.aggregate_type == "patients.sourcepatient"
    assert first.patient_ref == "hospital-ehr/Patient/pat-1"
    assert set(first.payload) == COMMON_KEYS | {"changed"}
    assert (first.payload["changed"], second.payload["changed"]) == (["phone", "address"], ["email"])


def _hl7(*segments: str) -> bytes:
    return "\r".join(segments).encode()


def _pv1(*, end: str = "", disposition: str = "") -> str:
    fields = [""] * 46
    fields[1:4] = ["1", "I", "WARD^101^A^GOOD HOSP"]
    fields[19] = "VISIT-9^^^GOOD HOSP^VN"
    fields[36] = disposition
    fields[44] = "20240301113000+0100"
    fields[45] = end
    return "PV1|" + "|".join(fields[1:]).rstrip("|")


PID = (
    "PID|1||MRN-1^^^GOOD HOSP^MR||Testperson^Alex||19800102|F|||1 Synthetic Way^^Springfield^ST^12345^US^H"
    "||^PRN^PH^^^555^0100000~^NET^Internet^alex@example.invalid"
)
ADMIT = _hl7(
    "MSH|^~\\&|ADT|GOOD HOSP|HUB|CONCORD|20240301120000+0100||ADT^A01^ADT_A01|CTRL-1|P|2.5",
    "EVN|A01|20240301120000+0100",
    PID,
    _pv1(),
)
DISCHARGE = _hl7(
    "MSH|^~\\&|ADT|GOOD HOSP|HUB|CONCORD|20240305090000+0100||ADT^A03^ADT_A03|CTRL-2|P|2.5",
    "EVN|A03|20240305090000+0100",
    PID,
    _pv1(end="20240305090000+0100", disposition="01"),
)
BOOKING = _hl7(
    "MSH|^~\\&|SCHED|GOOD HOSP|HUB|CONCORD|20240301120000+0000||SIU^S12^SIU_S12|SCH-1|P|2.4",
    "SCH|APPT-1^SCHED||||||CHECKUP^Check-up|ROUTINE|30|MIN|^^^20240310100000+0000",
    PID,
)


def test_hl7_admission_discharge_and_booking_record_events_once(source: Source, land: Land) -> None:
    for body in (ADMIT, DISCHARGE, BOOKING):
        assert land(source, body, format="hl7v2").status == InboundPayload.Status.ACCEPTED

    encounter_ref = SourceResource.objects.get(source=source, resource_type="Encounter").source_record_id
    appointment_ref = SourceResource.objects.get(source=source, resource_type="Appointment").source_record_id
    assert events() == [
        ("patient.admitted", f"hospital-ehr/Encounter/{encounter_ref}", "start:2024-03-01T10:30:00Z"),
        ("patient.discharged", f"hospital-ehr/Encounter/{encounter_ref}", "end:2024-03-05T08:00:00Z"),
        ("appointment.booked", f"hospital-ehr/Appointment/{appointment_ref}", "version:1"),
    ]
    discharge = event("patient.discharged")
    assert (discharge.payload["encounter_class"], discharge.payload["discharge_disposition"]) == ("IMP", "01")
    assert discharge.payload["period_end"] == "2024-03-05T08:00:00Z"
    assert discharge.patient_ref.startswith("hospital-ehr/Patient/")
    booked = event("appointment.booked")
    assert (booked.payload["start"], booked.payload["appointment_type"]) == (
        "2024-03-10T10:00:00+00:00",
        "ROUTINE",
    )

    # The same messages again (as new payloads: another control id) and the same facts again record nothing.
    for body in (ADMIT.replace(b"CTRL-1", b"CTRL-3"), DISCHARGE.replace(b"CTRL-2", b"CTRL-4"), BOOKING):
        land(source, body, format="hl7v2")
    assert OutboxEvent.objects.count() == 3


def test_relanding_identical_fhir_data_records_nothing_new(source: Source, land: Land) -> None:
    body = as_bytes(
        transaction(
            patient("pat-1"),
            encounter("enc-1", status="in-progress", period={"start": "2024-03-01T10:30:00Z"}),
            appointment("appt-1", status="booked"),
        )
    )
    land(source, body)
    recorded = events()

    land(source, body)  # the same bytes
    land(source, body.replace(b'"transaction"', b'"batch"'))  # other bytes, same resources

    assert len(recorded) == 2
    assert events() == recorded


def test_a_quarantined_payload_records_no_event(source: Source, land: Land) -> None:
    body = as_bytes(
        transaction(
            patient("pat-1"),
            encounter("enc-1", status="in-progress", period={"start": "2024-03-01T10:30:00Z"}),
            {"resourceType": "Observation", "id": "obs-1", "status": "final"},  # no code: invalid
        )
    )

    payload = land(source, body)

    assert payload.status == InboundPayload.Status.QUARANTINED
    assert not SourceResource.objects.filter(source=source).exists()
    assert events() == []


def test_events_written_by_a_transaction_that_fails_later_are_rolled_back_with_it(
    source: Source, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    def record_then_fail(*, events: list[OutboxEventDraft]) -> int:
        assert outbox_record(events=events) == 1
        assert OutboxEvent.objects.count() == 1  # written, not yet committed
        raise RuntimeError("a defect after the events were written")

    monkeypatch.setattr("patients.ingest.store.outbox_record", record_then_fail)

    payload = land(source, as_bytes(encounter("enc-1", status="arrived", class_code="EMER")))

    assert (payload.status, payload.outcome["kind"]) == (InboundPayload.Status.QUARANTINED, "internal")
    assert not SourceResource.objects.filter(source=source).exists()
    assert events() == []


def test_event_payloads_hold_no_name_phone_or_address(source: Source, land: Land) -> None:
    land(source, as_bytes(patient("pat-1")))
    land(source, as_bytes(encounter("enc-1", status="in-progress", period={"start": "2024-03-01T10:30:00Z"})))
    land(
        source,
        as_bytes(
            patient(
                "pat-1",
                telecom=[
                    {"system": "phone", "value": "(617) 555-0199"},
                    {"system": "email", "value": "a@b.invalid"},
                ],
                address=[{"line": ["3 Oak street"], "city": "Boston", "postalCode": "02110"}],
            )
        ),
    )
    for body in (ADMIT, DISCHARGE, BOOKING):
        land(source, body, format="hl7v2")

    assert sorted(OutboxEvent.objects.values_list("event_type", flat=True)) == [
        "appointment.booked", "contact.changed", "patient.admitted", "patient.admitted", "patient.discharged",
    ]  # fmt: skip
    text = json.dumps([row.payload for row in OutboxEvent.objects.all()])
    for value in (
        "Quigley", "Alma", "555-0134", "5550134", "555-0199", "5550199", "a@b.invalid", "Elm", "Oak", "Boston",
        "02108", "02110", "Testperson", "Alex", "0100000", "alex@example", "Synthetic Way", "Springfield",
    ):  # fmt: skip
        assert value not in text


def draft(event_type: str, ref: str, **extra: Any) -> OutboxEventDraft:
    return OutboxEventDraft(
        event_type=event_type, aggregate_type="tests.thing", aggregate_ref=ref, dedupe_key="1", **extra
    )


def test_consumers_take_pending_events_and_mark_them_published(db: None) -> None:
    outbox_record(
        events=[
            draft("patient.discharged", "a/Encounter/1", payload={"encounter_class": "IMP"}),
            draft("appointment.booked", "a/Appointment/1"),
            draft("patient.discharged", "a/Encounter/2"),
        ]
    )
    outbox_record(events=[draft("patient.discharged", "a/Encounter/1")])  # the same event again: skipped
    assert OutboxEvent.objects.count() == 3

    discharges = outbox_pending(event_types=["patient.discharged"])
    assert [row.aggregate_ref for row in discharges] == ["a/Encounter/1", "a/Encounter/2"]
    assert discharges[0].payload == {"encounter_class": "IMP"}
    assert [row.aggregate_ref for row in outbox_pending(limit=2)] == ["a/Encounter/1", "a/Appointment/1"]

    assert outbox_mark_published(event_ids=[row.external_id for row in discharges]) == 2
    assert outbox_mark_published(event_ids=[discharges[0].external_id]) == 0  # already published

    assert outbox_pending(event_types=["patient.discharged"]) == []
    assert [row.aggregate_ref for row in outbox_pending()] == ["a/Appointment/1"]
    assert OutboxEvent.objects.get(aggregate_ref="a/Encounter/1").published_at is not None
    assert outbox_record(events=[]) == 0
