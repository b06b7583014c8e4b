"""Online linking through the real ingestion path (landing, processing, storage) on PostgreSQL."""

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from patients.matching.features import FEATURES_VERSION
from patients.matching.scoring import default_weights, pair_score
from patients.matching.services import match_review_decide, patient_resolve
from patients.models import InboundPayload, MatchKey, MatchReview, Patient, PatientLink, Source, SourcePatient
from patients.services import source_create
from tests.patients.conftest import as_bytes, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

JSON = dict[str, Any]
Land = Callable[..., InboundPayload]
COMPARISON_NAMES = [
    "given_name",
    "family_name",
    "birth_date",
    "sex",
    "phone",
    "email",
    "address",
    "identifier",
    "ssn",
]


@pytest.fixture
def hospital(db: None) -> Source:
    return source_create(actor=None, slug="hospital-ehr", name="Hospital EHR", kind=Source.Kind.EHR)


@pytest.fixture
def clinic(db: None) -> Source:
    return source_create(actor=None, slug="clinic-ehr", name="Clinic EHR", kind=Source.Kind.EHR)


@pytest.fixture
def crm(db: None) -> Source:
    return source_create(actor=None, slug="crm", name="CRM", kind=Source.Kind.CRM)


def person(
    resource_id: str,
    *,
    mrn_system: str = "urn:oid:2.16.840.1.113883.3.1001.1",
    given: tuple[str, ...] = ("Alma",),
    family: str = "Quigley",
    birth_date: str = "1961-04-12",
    gender: str = "female",
    phone: str = "(617) 555-0134",
    line: str = "12 Elm Street",
    postal_code: str = "02108",
    **extra: Any,
) -> JSON:
    """A FHIR Patient; each source gives its own medical record number system."""
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": mrn_system, "value": f"MRN-{resource_id}"}],
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": birth_date,
        "telecom": [{"system": "phone", "value": phone, "use": "home"}],
        "address": [{"line": [line], "city": "Boston", "state": "MA", "postalCode": postal_code}],
        **extra,
    }


def send(land: Land, source: Source, *resources: JSON) -> None:
    payload = land(source, as_bytes(transaction(*resources)))
    assert payload.status == InboundPayload.Status.ACCEPTED, payload.problems


def record(source: Source, resource_id: str) -> SourcePatient:
    return SourcePatient.objects.select_related("link__patient").get(
        source=source, source_record_id=resource_id
    )


def link_of(source: Source, resource_id: str) -> PatientLink:
    return PatientLink.objects.get(
        source_patient__source=source, source_patient__source_record_id=resource_id
    )


def open_reviews() -> list[tuple[str, int | None, int, int | None, str]]:
    return sorted(
        MatchReview.objects.filter(status=MatchReview.Status.OPEN).values_list(
            "kind", "source_patient_id", "patient_id", "other_patient_id", "reason"
        )
    )


def test_the_same_person_in_two_sources_is_one_golden_patient(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic", given=("Alma", "June")))

    first, second = record(hospital, "h-1"), record(clinic, "c-1")
    assert first.link.patient_id == second.link.patient_id
    assert Patient.objects.filter(is_active=True).count() == 1
    assert (first.link.state, first.link.origin) == (PatientLink.State.NO_MATCH, PatientLink.Origin.AUTO)
    assert first.link.reason == "no candidate shares a blocking key"
    link = second.link
    assert (link.state, link.origin) == (PatientLink.State.MATCH, PatientLink.Origin.AUTO)
    assert link.matched_record_id == first.pk
    expected = pair_score(default_weights(), second.match_features, first.match_features)
    assert link.match_weight == pytest.approx(expected.match_weight, abs=1e-9)
    assert link.score == pytest.approx(expected.probability, abs=1e-12)
    assert expected.probability > 0.99
    assert link.reason == "automatic: probability 1.0000 >= 0.99"
    assert sorted(link.comparisons) == sorted(COMPARISON_NAMES)
    assert {name: outcome["level"] for name, outcome in link.comparisons.items()} == {
        "given_name": "exact",
        "family_name": "exact",
        "birth_date": "exact",
        "sex": "exact",
        "phone": "shares a number",
        "email": "missing",
        "address": "same street address",
        "identifier": "no shared identifier system",
        "ssn": "missing",
    }
    assert link.comparisons == expected.details
    assert first.link.patient.record["sources"] == ["clinic-ehr", "hospital-ehr"]
    assert open_reviews() == []


def test_features_and_blocking_keys_are_stored_with_the_record(hospital: Source, land: Land) -> None:
    send(land, hospital, person("h-1"))

    stored = record(hospital, "h-1")
    assert stored.match_features["version"] == FEATURES_VERSION
    assert stored.match_features["phones"] == ["+16175550134"]
    assert sorted(MatchKey.objects.filter(source_patient=stored).values_list("key", flat=True)) == [
        "a:02108:12",
        "df:1961-04-12:QAGLY",
        "dg:1961-04-12:ALN",
        "dg:1961-04-12:alma",
        "dy:04-12:QAG:a",
        "dz:1961-04-12:0",
        "i:urn:oid:2.16.840.1.113883.3.1001.1|MRN-H-1",
        "n:QAGLY:ALN",
        "p:+16175550134",
        "z:02108:a:Q",
        "zm:02108:04-12",
    ]


def test_a_nickname_and_a_married_name_still_link(hospital: Source, crm: Source, land: Land) -> None:
    send(land, hospital, person("h-1", given=("Margaret",), family="Smith"))
    send(land, crm, person("c-1", mrn_system="urn:crm", given=("Peggy",), family="Jones"))

    assert record(hospital, "h-1").link.patient_id == record(crm, "c-1").link.patient_id
    link = link_of(crm, "c-1")
    assert link.state == PatientLink.State.MATCH
    assert (link.comparisons["given_name"]["level"], link.comparisons["family_name"]["level"]) == (
        "nickname",
        "different",
    )


def test_twins_are_never_merged(hospital: Source, clinic: Source, land: Land) -> None:
    send(land, hospital, person("h-1", given=("Emma",), family="Clark", birth_date="2001-05-14"))
    send(
        land,
        clinic,
        person(
            "c-1", mrn_system="urn:oid:clinic", given=("Olivia",), family="Clark", birth_date="2001-05-14"
        ),
    )

    emma, olivia = record(hospital, "h-1"), record(clinic, "c-1")
    assert emma.link.patient_id != olivia.link.patient_id
    assert olivia.link.state == PatientLink.State.POSSIBLE_MATCH
    assert olivia.link.comparisons["address"]["level"] == "same street address"
    assert olivia.link.comparisons["phone"]["level"] == "shares a number"
    assert open_reviews() == [
        (MatchReview.Kind.POSSIBLE_MATCH, olivia.pk, emma.link.patient_id, None, "first names differ")
    ]


def test_junior_and_senior_at_one_address_are_never_merged(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(
        land, hospital, person("h-1", given=("John",), family="Smith", gender="male", birth_date="1962-08-30")
    )
    junior = person(
        "c-1",
        mrn_system="urn:oid:clinic",
        given=("John",),
        family="Smith",
        gender="male",
        birth_date="1990-02-11",
    )
    junior["name"][0]["suffix"] = ["Jr"]
    send(land, clinic, junior)

    senior, son = record(hospital, "h-1"), record(clinic, "c-1")
    assert senior.link.patient_id != son.link.patient_id
    assert son.link.state == PatientLink.State.POSSIBLE_MATCH
    assert open_reviews() == [
        (MatchReview.Kind.POSSIBLE_MATCH, son.pk, senior.link.patient_id, None, "birth dates differ")
    ]


def test_two_records_of_one_source_with_different_numbers_stay_apart(hospital: Source, land: Land) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))

    first, second = record(hospital, "h-1"), record(hospital, "h-2")
    assert first.link.patient_id != second.link.patient_id
    assert second.link.state == PatientLink.State.POSSIBLE_MATCH
    assert second.link.reason == "review: same source, different medical record number"
    assert open_reviews() == [
        (
            MatchReview.Kind.POSSIBLE_MATCH,
            second.pk,
            first.link.patient_id,
            None,
            "same source, different medical record number",
        )
    ]


def test_two_records_of_one_source_in_one_payload_stay_apart(hospital: Source, land: Land) -> None:
    send(land, hospital, person("h-1"), person("h-2"))

    assert record(hospital, "h-1").link.patient_id != record(hospital, "h-2").link.patient_id
    assert Patient.objects.count() == 2


def test_the_same_person_twice_in_one_payload_under_two_registries_ends_up_once(
    hospital: Source, land: Land
) -> None:
    send(land, hospital, person("h-1"), person("h-2", mrn_system="urn:oid:other-registry"))

    assert record(hospital, "h-1").link.patient_id == record(hospital, "h-2").link.patient_id


def test_a_placeholder_identity_is_never_linked_automatically(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1", given=("John",), family="Doe", gender="male", birth_date="1970-01-01"))
    send(
        land,
        clinic,
        person(
            "c-1",
            mrn_system="urn:oid:clinic",
            given=("John",),
            family="Doe",
            gender="male",
            birth_date="1970-01-01",
        ),
    )

    first, second = record(hospital, "h-1"), record(clinic, "c-1")
    assert first.link.patient_id != second.link.patient_id
    assert second.link.state == PatientLink.State.POSSIBLE_MATCH
    assert open_reviews() == [
        (MatchReview.Kind.POSSIBLE_MATCH, second.pk, first.link.patient_id, None, "placeholder identity")
    ]


def test_a_real_person_is_not_linked_automatically_to_a_placeholder_birth_date(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1", birth_date="1900-01-01"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic", birth_date="1900-01-01"))

    assert record(hospital, "h-1").link.patient_id != record(clinic, "c-1").link.patient_id
    assert link_of(clinic, "c-1").state == PatientLink.State.POSSIBLE_MATCH


def test_a_record_matching_two_golden_patients_marks_them_as_possible_duplicates(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))

    first, second, third = record(hospital, "h-1"), record(hospital, "h-2"), record(clinic, "c-1")
    patients = sorted([first.link.patient_id, second.link.patient_id])
    assert len({first.link.patient_id, second.link.patient_id, third.link.patient_id}) == 3
    assert third.link.state == PatientLink.State.POSSIBLE_MATCH
    assert third.link.reason == "matches 2 patients at once: marked as possible duplicates"
    reason = "matches 2 patients at once: marked as possible duplicates"
    assert [review for review in open_reviews() if review[1] == third.pk] == sorted(
        [
            (
                MatchReview.Kind.POSSIBLE_DUPLICATE,
                third.pk,
                patients[0],
                patients[1],
                f"record {third.pk} matches both",
            ),
            (MatchReview.Kind.POSSIBLE_MATCH, third.pk, patients[0], None, reason),
            (MatchReview.Kind.POSSIBLE_MATCH, third.pk, patients[1], None, reason),
        ]
    )


def test_a_new_record_matching_three_golden_patients_opens_each_review_once(
    hospital: Source, clinic: Source, land: Land
) -> None:
    for record_id in ("h-1", "h-2", "h-3"):
        send(land, hospital, person(record_id))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))  # accepted: no review made twice

    low, middle, high = sorted(
        record(hospital, record_id).link.patient_id for record_id in ("h-1", "h-2", "h-3")
    )
    new = record(clinic, "c-1")
    assert new.link.state == PatientLink.State.POSSIBLE_MATCH
    reason = "matches 3 patients at once: marked as possible duplicates"
    # The pairs (low, middle) and (low, high) are one review of ``low`` (the first made), as before.
    assert [review for review in open_reviews() if review[1] == new.pk] == sorted(
        [
            (MatchReview.Kind.POSSIBLE_DUPLICATE, new.pk, low, middle, f"record {new.pk} matches both"),
            (MatchReview.Kind.POSSIBLE_DUPLICATE, new.pk, middle, high, f"record {new.pk} matches both"),
            (MatchReview.Kind.POSSIBLE_MATCH, new.pk, low, None, reason),
            (MatchReview.Kind.POSSIBLE_MATCH, new.pk, middle, None, reason),
            (MatchReview.Kind.POSSIBLE_MATCH, new.pk, high, None, reason),
        ]
    )


def test_a_changed_record_is_linked_again(hospital: Source, clinic: Source, land: Land) -> None:
    send(land, hospital, person("h-1"))
    send(
        land,
        clinic,
        person(
            "c-1",
            mrn_system="urn:oid:clinic",
            given=("Olga",),
            family="Petrova",
            birth_date="1955-10-21",
            phone="(212) 555-0199",
            line="1 Broadway",
            postal_code="10004",
        ),
    )
    assert record(hospital, "h-1").link.patient_id != record(clinic, "c-1").link.patient_id

    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))

    assert record(hospital, "h-1").link.patient_id == record(clinic, "c-1").link.patient_id
    assert link_of(clinic, "c-1").state == PatientLink.State.MATCH
    assert Patient.objects.filter(is_active=True).count() == 1
    retired = Patient.objects.get(is_active=False)
    assert retired.merged_into_id == record(hospital, "h-1").link.patient_id


def test_a_changed_record_that_no_longer_matches_leaves_its_patient(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))
    assert record(hospital, "h-1").link.patient_id == record(clinic, "c-1").link.patient_id

    send(
        land,
        clinic,
        person(
            "c-1",
            mrn_system="urn:oid:clinic",
            given=("Olga",),
            family="Petrova",
            birth_date="1955-10-21",
            phone="(212) 555-0199",
            line="1 Broadway",
            postal_code="10004",
        ),
    )

    assert record(hospital, "h-1").link.patient_id != record(clinic, "c-1").link.patient_id


def test_a_source_merge_by_patient_link_moves_the_prior_record_to_the_survivor(
    hospital: Source, land: Land
) -> None:
    send(land, hospital, person("old-1"), person("new-1"))
    prior_patient = record(hospital, "old-1").link.patient_id
    survivor_patient = record(hospital, "new-1").link.patient_id
    assert prior_patient != survivor_patient

    send(
        land,
        hospital,
        person(
            "old-1", active=False, link=[{"other": {"reference": "Patient/new-1"}, "type": "replaced-by"}]
        ),
    )

    link = link_of(hospital, "old-1")
    assert link.patient_id == survivor_patient
    assert (link.state, link.origin) == (PatientLink.State.MATCH, PatientLink.Origin.AUTO)
    assert link.reason == "merged by the source into Patient/new-1"
    assert link.matched_record_id == record(hospital, "new-1").pk
    retired = Patient.objects.get(pk=prior_patient)
    assert (retired.is_active, retired.merged_into_id) == (False, survivor_patient)
    assert patient_resolve(retired).pk == survivor_patient
    assert Patient.objects.get(pk=survivor_patient).record["identifiers"] == [
        {
            "system": "urn:oid:2.16.840.1.113883.3.1001.1",
            "value": "MRN-new-1",
            "source": "hospital-ehr",
            "use": None,
        },
        {
            "system": "urn:oid:2.16.840.1.113883.3.1001.1",
            "value": "MRN-old-1",
            "source": "hospital-ehr",
            "use": None,
        },
    ]


def hl7(*segments: str) -> bytes:
    return "\r".join(segments).encode()


def registration(control: str, mrn: str) -> bytes:
    return hl7(
        f"MSH|^~\\&|ADT|GOOD HOSP|HUB|CONCORD|20240301120000||ADT^A28^ADT_A05|{control}|P|2.5",
        "EVN|A28|20240301120000",
        f"PID|1||{mrn}^^^GOOD HOSP^MR||Testperson^Alex||19800102|F|||1 Synthetic Way^^Springfield^MA^01103^US^H"
        "||^PRN^PH^^^413^5550100",
    )


def test_an_hl7_a40_merge_moves_the_prior_record_to_the_survivor(hospital: Source, land: Land) -> None:
    for control, mrn in (("REG-1", "MRN-OLD"), ("REG-2", "MRN-1")):
        payload = land(hospital, registration(control, mrn), format="hl7v2")
        assert payload.status == InboundPayload.Status.ACCEPTED, payload.problems
    prior, survivor = SourcePatient.objects.order_by("pk")
    prior_patient, survivor_patient = prior.link.patient_id, survivor.link.patient_id
    assert prior_patient != survivor_patient  # one source, two medical record numbers: a steward decides

    merge = hl7(
        "MSH|^~\\&|ADT|GOOD HOSP|HUB|CONCORD|20240302120000||ADT^A40^ADT_A39|MERGE-1|P|2.5",
        "EVN|A40|20240302120000",
        "PID|1||MRN-1^^^GOOD HOSP^MR||Testperson^Alex||19800102|F",
        "MRG|MRN-OLD^^^GOOD HOSP^MR",
    )
    payload = land(hospital, merge, format="hl7v2")

    assert payload.status == InboundPayload.Status.ACCEPTED, payload.problems
    assert SourcePatient.objects.count() == 2
    link = PatientLink.objects.get(source_patient=prior)
    assert link.patient_id == survivor_patient
    assert link.state == PatientLink.State.MATCH
    assert link.reason == f"merged by the source into Patient/{survivor.source_record_id}"
    assert PatientLink.objects.get(source_patient=survivor).patient_id == survivor_patient
    retired = Patient.objects.get(pk=prior_patient)
    assert (retired.is_active, retired.merged_into_id) == (False, survivor_patient)
    assert patient_resolve(retired).pk == survivor_patient


def test_a_manual_link_survives_a_changed_record_and_a_relink(hospital: Source, land: Land) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    review = MatchReview.objects.get(status=MatchReview.Status.OPEN)
    match_review_decide(actor=None, review=review, same_person=True, reason="registered twice")
    patient_id = record(hospital, "h-1").link.patient_id
    manual = link_of(hospital, "h-2")
    assert (manual.patient_id, manual.state, manual.origin) == (
        patient_id,
        PatientLink.State.MATCH,
        PatientLink.Origin.MANUAL,
    )

    send(land, hospital, person("h-2", phone="(617) 555-0999"))

    changed = link_of(hospital, "h-2")
    assert (changed.patient_id, changed.state, changed.origin, changed.reason) == (
        patient_id,
        PatientLink.State.MATCH,
        PatientLink.Origin.MANUAL,
        "registered twice",
    )
    assert Patient.objects.get(pk=patient_id).record["telecom"][1]["value"] == "+16175550999"

    call_command("mpi_relink", "--quiet", stdout=io.StringIO())

    relinked = link_of(hospital, "h-2")
    assert (relinked.patient_id, relinked.state, relinked.origin, relinked.reason) == (
        patient_id,
        PatientLink.State.MATCH,
        PatientLink.Origin.MANUAL,
        "registered twice",
    )
    assert link_of(hospital, "h-1").patient_id == patient_id


def test_a_rejected_candidate_is_not_proposed_again_when_the_record_changes(
    hospital: Source, clinic: Source, land: Land
) -> None:
    send(land, hospital, person("h-1", given=("Emma",), family="Clark", birth_date="2001-05-14"))
    send(
        land,
        clinic,
        person(
            "c-1",
            mrn_system="urn:oid:clinic",
            given=("Noah",),
            family="Clark",
            gender="male",
            birth_date="2001-05-14",
        ),
    )
    review = MatchReview.objects.get(status=MatchReview.Status.OPEN)
    match_review_decide(actor=None, review=review, same_person=False, reason="twins")

    send(
        land,
        clinic,
        person(
            "c-1",
            mrn_system="urn:oid:clinic",
            given=("Noah",),
            family="Clark",
            gender="male",
            birth_date="2001-05-14",
            phone="(617) 555-0177",
        ),
    )

    link = link_of(clinic, "c-1")
    assert (link.state, link.origin, link.reason) == (
        PatientLink.State.NO_MATCH,
        PatientLink.Origin.MANUAL,
        "twins",
    )
    assert link.patient_id != link_of(hospital, "h-1").patient_id
    assert open_reviews() == []


def test_two_rows_of_one_csv_export_for_one_person_link(crm: Source, land: Land) -> None:
    """A CSV row's id is the key of the row, not a registration number: a CRM's duplicates are linked."""
    mapping = {
        "format": "concord.csv-mapping/1",
        "fields": {
            "source_record_id": "CustomerID",
            "given": "First",
            "family": "Last",
            "birth_date": "DOB",
            "sex": "Sex",
            "postal_code": "Zip",
            "address_lines": ["Street"],
            "city": "City",
            "state": "State",
        },
        "phones": [{"column": "Phone", "use": "home"}],
    }
    rows = (
        "CustomerID,First,Last,DOB,Sex,Zip,Street,City,State,Phone\n"
        "C-100,Alma,Quigley,1961-04-12,F,02108,12 Elm Street,Boston,MA,617-555-0134\n"
        "C-200,Alma,Quigley,1961-04-12,F,02108,12 Elm St,Boston,MA,(617) 555 0134\n"
    )

    payload = land(crm, rows.encode(), format="csv", csv_mapping=mapping)

    assert payload.status == InboundPayload.Status.ACCEPTED, payload.problems
    first, second = record(crm, "C-100"), record(crm, "C-200")
    assert first.link.patient_id == second.link.patient_id
    assert {first.link.state, second.link.state} <= {PatientLink.State.MATCH, PatientLink.State.NO_MATCH}
    assert link_of(crm, "C-200").state == PatientLink.State.MATCH


def test_the_record_sharing_most_keys_is_found_among_more_namesakes_than_are_scored(
    land: Land, hospital: Source, clinic: Source
) -> None:
    from patients.matching.linking import MAX_CANDIDATES

    namesakes = [
        person(
            f"garcia-{number}",
            given=("Maria",),
            family="Garcia",
            birth_date=f"19{40 + number // 12:02d}-{number % 12 + 1:02d}-{number % 27 + 1:02d}",
            phone=f"(617) 555-{1000 + number:04d}",
            line=f"{number + 1} Harbor Road",
            postal_code=f"02{number:03d}",
        )
        for number in range(3 * MAX_CANDIDATES)
    ]
    send(land, hospital, *namesakes)
    last = namesakes[-1]  # the newest of them: a lookup stopping at the first records would miss her
    # The precondition: their shared name key alone brings more records than are scored.
    largest = max(
        MatchKey.objects.filter(key__startswith="n:").values_list("key", flat=True).distinct(),
        key=lambda key: MatchKey.objects.filter(key=key).count(),
    )
    assert MatchKey.objects.filter(key=largest).count() > MAX_CANDIDATES

    send(
        land,
        clinic,
        person(
            "c-garcia",
            mrn_system="urn:oid:2.16.840.1.113883.3.1001.2",
            given=("Maria",),
            family="Garcia",
            birth_date=last["birthDate"],
            phone=last["telecom"][0]["value"],
            line=last["address"][0]["line"][0],
            postal_code=last["address"][0]["postalCode"],
        ),
    )

    link = PatientLink.objects.get(source_patient__source_record_id="c-garcia")
    assert link.state == PatientLink.State.MATCH
    assert link.patient == patient_resolve(
        PatientLink.objects.get(source_patient__source_record_id=last["id"]).patient
    )
