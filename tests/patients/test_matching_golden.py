"""Golden records: survivorship per field with provenance, conflicts opened and resolved, recompute on change."""

from datetime import UTC, datetime
from typing import Any

import pytest

from governance.policies.survivorship import CandidateValue, conflicting_values, value_choose
from patients.models import Patient, PatientConflict, Source
from patients.services import source_create
from tests.patients.test_matching_linking import Land, person, record, send

JSON = dict[str, Any]
VERIFIED = [{"url": "https://concord.health/fhir/StructureDefinition/verified", "valueBoolean": True}]


@pytest.fixture
def hospital(db: None) -> Source:
    return source_create(actor=None, slug="hospital-ehr", name="Hospital EHR", kind=Source.Kind.EHR)


@pytest.fixture
def clinic(db: None) -> Source:
    return source_create(actor=None, slug="clinic-ehr", name="Clinic EHR", kind=Source.Kind.EHR)


@pytest.fixture
def crm(db: None) -> Source:
    return source_create(actor=None, slug="crm", name="CRM", kind=Source.Kind.CRM)


def updated(moment: str) -> JSON:
    return {"meta": {"lastUpdated": moment}}


def golden_of(source: Source, resource_id: str) -> Patient:
    return Patient.objects.get(pk=record(source, resource_id).link.patient_id)


def evidence(source: Source, resource_id: str, value: Any, recorded_at: str, trust_rank: int) -> JSON:
    stored = record(source, resource_id)
    return {
        "value": value,
        "source": source.slug,
        "source_record_id": resource_id,
        "record": str(stored.external_id),
        "recorded_at": recorded_at,
        "trust_rank": trust_rank,
        "verified": False,
    }


@pytest.mark.postgres
def test_each_field_keeps_its_source_record_and_rule(hospital: Source, crm: Source, land: Land) -> None:
    send(land, hospital, person("h-1", **updated("2024-01-01T00:00:00Z")))
    send(
        land,
        crm,
        person(
            "c-1",
            mrn_system="urn:crm",
            phone="(617) 555-0999",
            telecom=[
                {"system": "phone", "value": "(617) 555-0999", "use": "mobile"},
                {"system": "email", "value": "alma@example.org"},
            ],
            **updated("2024-02-01T00:00:00Z"),
        ),
    )

    golden = golden_of(hospital, "h-1")
    assert golden.pk == record(crm, "c-1").link.patient_id
    hospital_record, crm_record = record(hospital, "h-1"), record(crm, "c-1")
    hospital_evidence = {
        "source": "hospital-ehr",
        "source_record_id": "h-1",
        "record": str(hospital_record.external_id),
        "recorded_at": "2024-01-01T00:00:00+00:00",
        "verified": False,
    }
    crm_evidence = {
        "source": "crm",
        "source_record_id": "c-1",
        "record": str(crm_record.external_id),
        "recorded_at": "2024-02-01T00:00:00+00:00",
        "verified": False,
    }
    assert golden.provenance == {
        "name": {**hospital_evidence, "trust_rank": 1, "rule": "all sources agree"},
        "birth_date": {**hospital_evidence, "trust_rank": 1, "rule": "all sources agree"},
        "gender": {**hospital_evidence, "trust_rank": 1, "rule": "all sources agree"},
        "phone": {**crm_evidence, "trust_rank": 1, "rule": "most trusted source"},
        "email": {**crm_evidence, "trust_rank": 1, "rule": "only value"},
        "address": {**crm_evidence, "trust_rank": 1, "rule": "all sources agree"},
    }
    assert golden.record["phone"] == {"system": "phone", "value": "+16175550999", "use": "mobile"}
    assert golden.record["name"] == {"family": "Quigley", "given": ["Alma"]}
    assert golden.record["birth_date"] == "1961-04-12"
    assert golden.record["sources"] == ["crm", "hospital-ehr"]
    assert (golden.family_name, golden.given_names, str(golden.birth_date), golden.gender) == (
        "Quigley",
        "Alma",
        "1961-04-12",
        "female",
    )
    assert (golden.phone, golden.email, golden.postal_code, golden.city) == (
        "+16175550999",
        "alma@example.org",
        "02108",
        "Boston",
    )
    assert golden.record["telecom"] == [
        {
            "system": "phone",
            "value": "+16175550134",
            "use": "home",
            "sources": ["hospital-ehr"],
            "verified": False,
        },
        {"system": "phone", "value": "+16175550999", "use": "mobile", "sources": ["crm"], "verified": False},
        {"system": "email", "value": "alma@example.org", "use": None, "sources": ["crm"], "verified": False},
    ]
    # Both sources are trusted for contact details (EHR rank 2, CRM rank 1): their phones conflict.
    conflict = PatientConflict.objects.get(patient=golden)
    assert (conflict.field, conflict.status) == ("phone", PatientConflict.Status.OPEN)
    assert conflict.values == [
        {
            **hospital_evidence,
            "value": {"system": "phone", "value": "+16175550134", "use": "home"},
            "trust_rank": 2,
        },
        {
            **crm_evidence,
            "value": {"system": "phone", "value": "+16175550999", "use": "mobile"},
            "trust_rank": 1,
        },
    ]


@pytest.mark.postgres
def test_a_birth_date_conflict_opens_and_resolves_when_the_sources_agree_again(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1", **updated("2024-01-01T00:00:00Z")))
    send(
        land,
        clinic,
        person(
            "c-1", mrn_system="urn:oid:clinic", birth_date="1961-04-13", **updated("2024-02-01T00:00:00Z")
        ),
    )

    golden = golden_of(hospital, "h-1")
    assert golden.pk == golden_of(clinic, "c-1").pk
    conflict = PatientConflict.objects.get(patient=golden)
    assert (conflict.field, conflict.status, conflict.resolved_at) == (
        "birth_date",
        PatientConflict.Status.OPEN,
        None,
    )
    assert conflict.values == [
        evidence(hospital, "h-1", "1961-04-12", "2024-01-01T00:00:00+00:00", 1),
        evidence(clinic, "c-1", "1961-04-13", "2024-02-01T00:00:00+00:00", 1),
    ]
    # Equally trusted: the more recent record wins.
    assert golden.record["birth_date"] == "1961-04-13"
    assert golden.provenance["birth_date"]["rule"] == "most recent"
    assert golden.provenance["birth_date"]["source"] == "clinic-ehr"

    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic", **updated("2024-03-01T00:00:00Z")))

    conflict.refresh_from_db()
    assert conflict.status == PatientConflict.Status.RESOLVED
    assert conflict.resolved_at is not None
    assert PatientConflict.objects.filter(patient=golden, status=PatientConflict.Status.OPEN).count() == 0
    golden.refresh_from_db()
    assert golden.record["birth_date"] == "1961-04-12"
    assert golden.provenance["birth_date"]["rule"] == "all sources agree"


@pytest.mark.postgres
def test_a_conflict_that_changes_keeps_one_open_row_with_the_new_values(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1", **updated("2024-01-01T00:00:00Z")))
    send(
        land,
        clinic,
        person(
            "c-1", mrn_system="urn:oid:clinic", birth_date="1961-04-13", **updated("2024-02-01T00:00:00Z")
        ),
    )

    send(
        land,
        clinic,
        person(
            "c-1", mrn_system="urn:oid:clinic", birth_date="1961-04-21", **updated("2024-03-01T00:00:00Z")
        ),
    )

    golden = golden_of(hospital, "h-1")
    conflict = PatientConflict.objects.get(patient=golden)
    assert conflict.status == PatientConflict.Status.OPEN
    assert [value["value"] for value in conflict.values] == ["1961-04-12", "1961-04-21"]


@pytest.mark.postgres
def test_a_source_ranked_below_trusted_raises_no_conflict(hospital: Source, crm: Source, land: Land) -> None:
    send(land, hospital, person("h-1", **updated("2024-01-01T00:00:00Z")))
    send(
        land,
        crm,
        person("c-1", mrn_system="urn:crm", birth_date="1961-04-13", **updated("2024-02-01T00:00:00Z")),
    )

    golden = golden_of(hospital, "h-1")
    assert golden.pk == golden_of(crm, "c-1").pk
    assert PatientConflict.objects.filter(patient=golden).count() == 0
    # The EHR is trusted for demographics over the more recent CRM.
    assert golden.record["birth_date"] == "1961-04-12"
    assert golden.provenance["birth_date"]["rule"] == "most trusted source"


@pytest.mark.postgres
def test_the_golden_record_is_recomputed_when_a_linked_record_changes(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1", **updated("2024-01-01T00:00:00Z")))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic", **updated("2024-02-01T00:00:00Z")))
    golden = golden_of(hospital, "h-1")
    computed_at = golden.computed_at
    assert golden.provenance["phone"]["rule"] == "all sources agree"

    send(
        land,
        clinic,
        person("c-1", mrn_system="urn:oid:clinic", phone="(617) 555-0777", **updated("2024-03-01T00:00:00Z")),
    )

    golden.refresh_from_db()
    assert golden.computed_at is not None
    assert computed_at is not None
    assert golden.computed_at > computed_at
    assert golden.phone == "+16175550777"
    assert golden.record["phone"] == {"system": "phone", "value": "+16175550777", "use": "home"}
    assert golden.provenance["phone"] == {
        "source": "clinic-ehr",
        "source_record_id": "c-1",
        "record": str(record(clinic, "c-1").external_id),
        "recorded_at": "2024-03-01T00:00:00+00:00",
        "trust_rank": 2,
        "verified": False,
        "rule": "most recent",
    }
    assert [point["value"] for point in golden.record["telecom"]] == ["+16175550134", "+16175550777"]


@pytest.mark.postgres
def test_a_source_trust_override_changes_the_winner(hospital: Source, land: Land) -> None:
    engagement = source_create(
        actor=None,
        slug="engagement",
        name="Engagement",
        kind=Source.Kind.ENGAGEMENT,
        connector_settings={"trust": {"contact": 5}},
    )
    send(land, hospital, person("h-1", **updated("2024-01-01T00:00:00Z")))
    send(
        land,
        engagement,
        person("e-1", mrn_system="urn:engagement", phone="(617) 555-0888", **updated("2024-02-01T00:00:00Z")),
    )

    golden = golden_of(hospital, "h-1")
    assert golden.pk == golden_of(engagement, "e-1").pk
    assert golden.phone == "+16175550134"
    assert (golden.provenance["phone"]["source"], golden.provenance["phone"]["rule"]) == (
        "hospital-ehr",
        "most trusted source",
    )


# Survivorship rules on plain values (no database).


def value(
    text: str,
    *,
    slug: str = "ehr-a",
    kind: str = "ehr",
    day: int = 1,
    verified: bool = False,
    completeness: int = 1,
) -> CandidateValue:
    return CandidateValue(
        value=text,
        comparable=text.lower(),
        source_slug=slug,
        source_kind=kind,
        source_record_id=f"{slug}-{text}",
        record_ref=f"ref-{slug}-{text}",
        recorded_at=datetime(2024, 1, day, tzinfo=UTC),
        verified=verified,
        completeness=completeness,
    )


def test_survivorship_breaks_ties_by_trust_then_recency_then_verified_then_completeness() -> None:
    def chosen(*candidates: CandidateValue) -> tuple[str, str]:
        choice = value_choose("phone", candidates)
        assert choice is not None
        return choice.winner.value, choice.rule

    assert chosen(value("a", kind="ehr", day=9), value("b", kind="crm", day=1)) == (
        "b",
        "most trusted source",
    )
    assert chosen(value("a", day=1), value("b", day=2)) == ("b", "most recent")
    assert chosen(value("a"), value("b", verified=True)) == ("b", "verified")
    assert chosen(value("a", completeness=3), value("b", completeness=1)) == ("a", "most complete")
    assert chosen(value("a"), value("A")) == ("A", "all sources agree")
    assert chosen(value("a")) == ("a", "only value")
    assert chosen(value("b"), value("a")) == ("a", "tie: first record")
    assert value_choose("phone", []) is None


def test_survivorship_rules_are_data() -> None:
    choice = value_choose(
        "phone", [value("a", day=2), value("b", verified=True)], rules=("verified", "recency")
    )

    assert choice is not None
    assert (choice.winner.value, choice.rule) == ("b", "verified")


def test_only_trusted_sources_disagreeing_on_a_key_field_conflict() -> None:
    ehr, lab, crm = (
        value("a", kind="ehr"),
        value("b", slug="lab", kind="lab"),
        value("c", slug="crm", kind="crm"),
    )

    assert [found.value for found in conflicting_values("birth_date", [ehr, lab, crm])] == ["a", "b"]
    assert conflicting_values("birth_date", [ehr, crm]) == []
    assert conflicting_values("email", [value("a", kind="crm"), value("b", kind="crm")]) == []
    assert conflicting_values("phone", [ehr, value("A", slug="ehr-b")]) == []
