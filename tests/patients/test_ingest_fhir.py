"""FHIR payloads through landing, parsing, normalization and storage, on the real database."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from patients.models import (
    InboundPayload,
    ResourceVersion,
    Source,
    SourceIdentifier,
    SourcePatient,
    SourceResource,
)
from tests.patients.conftest import SHARED_DATA, as_bytes, blood_pressure, patient, transaction

SYNTHEA = SHARED_DATA / "synthea-r4"

PATIENT_UUID = "7d1c2a52-3c1f-4b8e-9f1a-0a9b2c3d4e5f"
OBSERVATION_UUID = "1f6e8a3c-8c4b-4b8f-a8a0-4e1c2b3a4d5e"


def test_bundle_lands_exactly_and_is_stored_with_resolved_references(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    body = as_bytes(
        transaction(patient(PATIENT_UUID), blood_pressure(OBSERVATION_UUID, f"urn:uuid:{PATIENT_UUID}"))
    )

    payload = land(source, body)

    assert bytes(payload.body) == body
    assert payload.size == len(body)
    assert payload.status == InboundPayload.Status.ACCEPTED
    assert payload.outcome["stored"] == {"Observation": 1, "Patient": 1}
    observation = SourceResource.objects.get(source=source, resource_type="Observation")
    stored_patient = SourcePatient.objects.get(source=source)
    assert observation.source_record_id == OBSERVATION_UUID
    assert observation.resource["subject"] == {"reference": f"Patient/{PATIENT_UUID}"}
    assert observation.patient == stored_patient
    assert observation.patient_source_id == PATIENT_UUID
    assert (observation.code_system, observation.code, observation.status) == (
        "http://loinc.org",
        "85354-9",
        "final",
    )
    assert observation.effective_at is not None
    assert observation.effective_at.isoformat() == "2024-03-02T14:30:00+00:00"
    assert observation.resource["effectiveDateTime"] == "2024-03-02T14:30:00Z"


def test_patient_demographics_are_normalized_and_originals_kept(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    land(source, as_bytes(patient("p-1")))

    stored = SourcePatient.objects.get(source=source, source_record_id="p-1")
    assert stored.phone == "+16175550134"
    assert (stored.family_name, stored.given_names, stored.gender) == ("Quigley", "Alma", "female")
    assert str(stored.birth_date) == "1961-04-12"
    assert stored.postal_code == "02108"
    telecom = stored.resource["telecom"][0]
    assert telecom["value"] == "+16175550134"
    assert telecom["_value"]["extension"][0]["valueString"] == "(617) 555-0134"
    address = stored.resource["address"][0]
    assert address["line"] == ["12 Elm St"]
    assert address["state"] == "MA"


def test_same_payload_twice_is_stored_and_processed_once(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    body = as_bytes(patient("p-1"))

    first = land(source, body)
    second = land(source, body)

    assert first.pk == second.pk
    assert second.times_received == 2
    assert second.attempts == 1
    assert InboundPayload.objects.count() == 1
    assert SourcePatient.objects.count() == 1


def test_newer_version_replaces_current_and_keeps_history(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    land(source, as_bytes(patient("p-1")))
    moved = patient(
        "p-1", address=[{"line": ["9 Oak Avenue"], "city": "Salem", "state": "MA", "postalCode": "01970"}]
    )

    payload = land(source, as_bytes(moved))

    current = SourcePatient.objects.get(source=source, source_record_id="p-1")
    assert payload.outcome["updated"] == {"Patient": 1}
    assert current.version == 2
    assert current.postal_code == "01970"
    assert current.resource["address"][0]["line"] == ["9 Oak Ave"]
    previous = ResourceVersion.objects.get(source=source, resource_type="Patient", source_record_id="p-1")
    assert previous.version == 1
    assert previous.resource["address"][0]["postalCode"] == "02108"


def test_identical_content_in_a_new_payload_changes_nothing(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    land(source, as_bytes(patient("p-1")))
    same_in_a_bundle = as_bytes(transaction(patient("p-1")))

    payload = land(source, same_in_a_bundle)

    assert payload.status == InboundPayload.Status.ACCEPTED
    assert payload.outcome["unchanged"] == {"Patient": 1}
    assert payload.outcome["stored"] == {}
    assert SourcePatient.objects.get().version == 1
    assert ResourceVersion.objects.count() == 0


def test_conditional_reference_resolves_against_stored_identifiers(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    practitioner = {
        "resourceType": "Practitioner",
        "id": "dr-1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999912345"}],
    }
    land(source, as_bytes(transaction(practitioner, bundle_type="collection")))
    encounter = {
        "resourceType": "Encounter",
        "id": "enc-1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "participant": [
            {"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999912345"}}
        ],
        "period": {"start": "2024-01-05T10:00:00Z"},
    }

    payload = land(source, as_bytes(transaction(encounter)))

    assert payload.status == InboundPayload.Status.ACCEPTED
    stored = SourceResource.objects.get(resource_type="Encounter")
    assert stored.resource["participant"][0]["individual"]["reference"] == "Practitioner/dr-1"
    assert SourceIdentifier.objects.get(value="9999912345").source_record_id == "dr-1"


def test_resource_that_arrives_before_its_patient_is_attached_later(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    land(source, as_bytes(blood_pressure("obs-1", "Patient/p-9")))
    assert SourceResource.objects.get().patient is None

    land(source, as_bytes(patient("p-9")))

    assert SourceResource.objects.get().patient == SourcePatient.objects.get(source_record_id="p-9")


def test_batch_stores_valid_entries_and_quarantines_the_rest(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    bundle = transaction(patient("p-1"), blood_pressure("obs-1", "urn:uuid:missing"), bundle_type="batch")

    payload = land(source, as_bytes(bundle))

    assert payload.status == InboundPayload.Status.QUARANTINED
    assert payload.outcome["stored"] == {"Patient": 1}
    assert payload.problems == [
        {
            "location": "Bundle.entry[1].resource.subject.reference",
            "message": "reference 'urn:uuid:missing' does not resolve to an entry of this Bundle or a known resource of this source",
        }
    ]
    assert SourceResource.objects.count() == 0


def test_same_records_from_two_sources_are_kept_apart(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    from patients.services import source_create

    crm = source_create(actor=None, slug="crm", name="CRM", kind=Source.Kind.CRM)

    land(source, as_bytes(patient("p-1")))
    land(crm, as_bytes(patient("p-1")))

    assert SourcePatient.objects.filter(source_record_id="p-1").count() == 2


def test_long_numbers_are_kept_exactly(source: Source, land: Callable[..., InboundPayload]) -> None:
    body = b'{"resourceType": "Observation", "id": "o-1", "status": "final", "code": {"text": "count"}, "valueQuantity": {"value": 123456789012345678901234567890}}'

    payload = land(source, body)

    assert payload.status == InboundPayload.Status.ACCEPTED
    stored = SourceResource.objects.get(source_record_id="o-1").resource
    assert stored["valueQuantity"]["value"] == 123456789012345678901234567890


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (-123456789012345678901234567890, "Person seed: 8766734163625651911"),
        (18446744073709551616, "no long digits in the text"),
        (-9223372036854775809, "seed 1234567890123456789"),
        (9223372036854775807, "seed 1234567890123456789 and a large integer that fits in 64 bits"),
    ],
)
def test_integers_beyond_64_bits_are_kept_exactly_whatever_else_has_long_digits(
    source: Source, land: Callable[..., InboundPayload], number: int, text: str
) -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o-2",
        "status": "final",
        "code": {"text": text},
        "valueQuantity": {"value": number},
        "note": [{"text": text}],
    }

    payload = land(source, json.dumps(observation).encode())

    assert payload.status == InboundPayload.Status.ACCEPTED
    stored = SourceResource.objects.get(source_record_id="o-2").resource
    assert stored["valueQuantity"]["value"] == number
    assert type(stored["valueQuantity"]["value"]) is int
    assert stored["note"] == [{"text": text}]


def test_an_identifier_sent_again_under_another_record_points_at_the_new_one(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    def practitioner(resource_id: str, npi: str) -> dict[str, Any]:
        return {
            "resourceType": "Practitioner",
            "id": resource_id,
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
        }

    land(
        source, as_bytes(transaction(practitioner("dr-1", "9999912345"), practitioner("dr-7", "9999954321")))
    )
    # The source re-registered both practitioners under new ids, and a third one is new.
    payload = land(
        source,
        as_bytes(
            transaction(
                practitioner("dr-2", "9999912345"),
                practitioner("dr-8", "9999954321"),
                practitioner("dr-9", "9999900000"),
            )
        ),
    )

    assert payload.status == InboundPayload.Status.ACCEPTED
    assert dict(SourceIdentifier.objects.filter(source=source).values_list("value", "source_record_id")) == {
        "9999912345": "dr-2",
        "9999954321": "dr-8",
        "9999900000": "dr-9",
    }


def test_a_large_body_is_kept_byte_for_byte_compressed_with_lz4_where_the_server_has_it(
    source: Source, land: Callable[..., InboundPayload]
) -> None:
    from django.db import connection

    observations = [blood_pressure(f"bp-{index}", f"urn:uuid:{PATIENT_UUID}") for index in range(150)]
    body = as_bytes(transaction(patient(PATIENT_UUID), *observations))
    assert len(body) > 20_000  # beyond PostgreSQL's inline limit: the body is compressed

    payload = land(source, body)

    assert bytes(InboundPayload.objects.get(pk=payload.pk).body) == body
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'patients_inboundpayload'::regclass AND attname = 'body'"
            )
            column = cursor.fetchone()[0]
            cursor.execute(
                "SELECT pg_column_compression(body) FROM patients_inboundpayload WHERE id = %s", [payload.pk]
            )
            used = cursor.fetchone()[0]
            cursor.execute(  # its outcome answers each of the 151 entries: compressed too
                "SELECT pg_column_compression(outcome) FROM patients_inboundpayload WHERE id = %s",
                [payload.pk],
            )
            outcome_used = cursor.fetchone()[0]
        # The migrations set lz4 where the server was built with it, and leave the default elsewhere.
        assert used == outcome_used == ("lz4" if column == "l" else "pglz")


def test_long_digits_inside_strings_leave_the_payload_to_the_fast_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from patients.ingest import fhir_input

    def standard_parser_used(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the standard parser was used")

    narrative = {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Person seed: 6380558951219250530</div>',
    }
    document = {
        "resourceType": "Bundle",
        "type": "collection",
        "id": "b-1",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p-1", "text": narrative}}],
        "total": 1,
    }
    body = json.dumps(document).encode()
    monkeypatch.setattr(fhir_input.json, "loads", standard_parser_used)
    assert fhir_input.json_load(body) == document
    monkeypatch.undo()

    beyond = json.dumps({**document, "total": 18446744073709551616}).encode()
    assert fhir_input.json_load(beyond)["total"] == 18446744073709551616
    listed = b'{"resourceType": "Basic", "values": [1, -92233720368547758090]}'
    assert fhir_input.json_load(listed)["values"] == [1, -92233720368547758090]


@settings(max_examples=600, deadline=None)
@example(parts=[b'{"a": -', b"12345678901234567890", b"}"])
@example(parts=[b"[1, ", b"12345678901234567890", b" ]"])
@example(parts=[b'"seed -', b"12345678901234567890", b' "'])
@example(parts=[b":-", b"1234567890123456789", b"0", b"1"])
@given(
    parts=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    b":",
                    b",",
                    b"[",
                    b"]",
                    b"}",
                    b"{",
                    b"-",
                    b" ",
                    b"\n",
                    b"\t",
                    b'"',
                    b"a",
                    b".",
                    b": -",
                    b"[-",
                ]
            ),
            st.integers(min_value=0, max_value=10**30).map(lambda number: str(number).encode()),
        ),
        max_size=12,
    )
)
def test_the_long_integer_check_agrees_with_its_expression(parts: list[bytes]) -> None:
    """The digit-run check finds exactly what the regular expression finds, wherever the digits are."""
    from patients.ingest import fhir_input

    body = b"".join(parts)

    assert fhir_input._long_integer_found(body) == bool(fhir_input._LONG_INTEGER.search(body))


def test_the_long_integer_check_agrees_with_its_expression_on_the_synthea_bundles() -> None:
    from patients.ingest import fhir_input

    bundles = sorted(SYNTHEA.glob("*.json"))[:20] if SYNTHEA.is_dir() else []
    if not bundles:
        pytest.skip(f"the shared Synthea bundles are not at {SYNTHEA}")
    for path in bundles:
        body = path.read_bytes()
        assert fhir_input._long_integer_found(body) == bool(fhir_input._LONG_INTEGER.search(body)) is False
        beyond = body.replace(
            b'"type": "transaction"', b'"type": "transaction", "total": 18446744073709551616', 1
        )
        assert beyond != body
        assert fhir_input._long_integer_found(beyond) is bool(fhir_input._LONG_INTEGER.search(beyond)) is True
