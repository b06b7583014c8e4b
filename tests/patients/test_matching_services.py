"""Patient index services (merge, unmerge, resolve, steward decisions) and commands, on PostgreSQL."""

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from core.errors import ApplicationError
from core.roles import DATA_STEWARD
from patients.matching.linking import active_weights
from patients.matching.services import match_review_decide, patient_merge, patient_resolve, patient_unmerge
from patients.models import MatchModel, MatchReview, Patient, PatientLink, PatientMerge, Source, SourcePatient
from patients.normalize import patient_resource_normalize
from patients.services import source_create
from patients.synthetic import generate_population
from patients.synthetic.records import CLINIC_EHR, HOSPITAL_EHR
from tests.patients.conftest import as_bytes
from tests.patients.test_matching_linking import Land, link_of, person, record, send

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

JSON = dict[str, Any]
OLGA: JSON = {
    "given": ("Olga",),
    "family": "Petrova",
    "birth_date": "1955-10-21",
    "phone": "(212) 555-0199",
    "line": "1 Broadway",
    "postal_code": "10004",
}


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def hospital(db: None) -> Source:
    return source_create(actor=None, slug="hospital-ehr", name="Hospital EHR", kind=Source.Kind.EHR)


@pytest.fixture
def clinic(db: None) -> Source:
    return source_create(actor=None, slug="clinic-ehr", name="Clinic EHR", kind=Source.Kind.EHR)


@pytest.fixture
def steward(role_users: dict[str, User]) -> User:
    return role_users[DATA_STEWARD]


LinkRow = tuple[int, int, str, str, str, int | None, float | None, JSON]


def links() -> list[LinkRow]:
    return sorted(
        PatientLink.objects.values_list(
            "source_patient_id",
            "patient_id",
            "state",
            "origin",
            "reason",
            "decided_by_id",
            "score",
            "comparisons",
        )
    )


@pytest.fixture
def two_people(hospital: Source, clinic: Source, land: Land, steward: User) -> tuple[Patient, Patient]:
    """Alma (hospital h-1, clinic c-1) and Olga (hospital h-2, clinic c-2, and h-3 linked by a steward)."""
    send(land, hospital, person("h-1"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))
    send(land, hospital, person("h-2", **OLGA))
    send(land, clinic, person("c-2", mrn_system="urn:oid:clinic", **OLGA))
    send(land, hospital, person("h-3", **OLGA))
    review = MatchReview.objects.get(status=MatchReview.Status.OPEN, source_patient=record(hospital, "h-3"))
    match_review_decide(actor=steward, review=review, same_person=True, reason="registered twice")
    alma, olga = record(hospital, "h-1").link.patient, record(hospital, "h-2").link.patient
    assert PatientLink.objects.filter(patient=alma).count() == 2
    assert PatientLink.objects.filter(patient=olga).count() == 3
    return alma, olga


def test_a_merge_moves_every_link_and_the_duplicate_resolves_to_the_survivor(
    two_people: tuple[Patient, Patient], steward: User
) -> None:
    alma, olga = two_people
    moved = sorted(PatientLink.objects.filter(patient=olga).values_list("pk", flat=True))

    merge = patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")

    assert (merge.survivor_id, merge.duplicate_id, merge.actor_id, merge.reason) == (
        alma.pk,
        olga.pk,
        steward.pk,
        "one person",
    )
    assert sorted(merge.moved_links) == moved
    assert PatientLink.objects.filter(patient=olga).count() == 0
    assert (
        sorted(
            PatientLink.objects.filter(pk__in=moved).values_list("state", "origin", "reason", "decided_by_id")
        )
        == [(PatientLink.State.MATCH, PatientLink.Origin.MANUAL, "merge: one person", steward.pk)] * 3
    )
    olga.refresh_from_db()
    assert (olga.is_active, olga.merged_into_id) == (False, alma.pk)
    assert patient_resolve(olga) == alma
    assert patient_resolve(alma) == alma
    alma.refresh_from_db()
    assert alma.record["sources"] == ["clinic-ehr", "hospital-ehr"]
    assert len(alma.record["identifiers"]) == 5


def test_an_unmerge_restores_exactly_the_links_states_and_origins(
    two_people: tuple[Patient, Patient], steward: User
) -> None:
    alma, olga = two_people
    before = links()
    alma_record, olga_record = dict(alma.record), dict(olga.record)
    merge = patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")

    restored = patient_unmerge(actor=steward, merge=merge, reason="two people after all")

    assert restored == olga
    assert links() == before
    olga.refresh_from_db()
    alma.refresh_from_db()
    assert (olga.is_active, olga.merged_into_id) == (True, None)
    assert patient_resolve(olga) == olga
    assert olga.record == olga_record
    assert alma.record == alma_record
    merge.refresh_from_db()
    assert merge.unmerged_at is not None
    assert (merge.unmerged_by_id, merge.unmerge_reason) == (steward.pk, "two people after all")


def test_an_unmerge_leaves_alone_a_link_moved_elsewhere_since(
    two_people: tuple[Patient, Patient], steward: User, hospital: Source
) -> None:
    alma, olga = two_people
    merge = patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")
    third = Patient.objects.create()
    link = link_of(hospital, "h-3")
    link.patient = third
    link.save()

    patient_unmerge(actor=steward, merge=merge, reason="two people after all")

    assert link_of(hospital, "h-3").patient_id == third.pk
    assert PatientLink.objects.filter(patient=olga).count() == 2


def test_merges_resolve_along_a_chain_and_into_the_final_survivor(
    two_people: tuple[Patient, Patient], steward: User, hospital: Source, land: Land
) -> None:
    alma, olga = two_people
    send(
        land,
        hospital,
        person(
            "h-4",
            given=("Ruth",),
            family="Nakamura",
            birth_date="1990-02-02",
            phone="(415) 555-0101",
            line="9 Pine St",
            postal_code="94101",
        ),
    )
    ruth = record(hospital, "h-4").link.patient
    patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")
    patient_merge(actor=steward, survivor=ruth, duplicate=alma, reason="one person")
    olga.refresh_from_db()
    alma.refresh_from_db()

    assert patient_resolve(olga) == ruth
    assert patient_resolve(alma) == ruth
    # A merge into a merged-away patient goes to where it resolves.
    fourth = Patient.objects.create()
    merge = patient_merge(actor=steward, survivor=olga, duplicate=fourth, reason="empty duplicate")
    assert merge.survivor_id == ruth.pk


def test_a_merge_needs_a_reason_and_changes_nothing_without_one(
    two_people: tuple[Patient, Patient], steward: User
) -> None:
    alma, olga = two_people
    before = links()

    for reason in ("", "   "):
        with pytest.raises(ApplicationError, match=exactly("A merge needs a reason.")):
            patient_merge(actor=steward, survivor=alma, duplicate=olga, reason=reason)

    assert links() == before
    assert PatientMerge.objects.count() == 0
    olga.refresh_from_db()
    assert (olga.is_active, olga.merged_into_id) == (True, None)


def test_a_merge_refuses_merging_a_patient_into_itself_or_twice(
    two_people: tuple[Patient, Patient], steward: User
) -> None:
    alma, olga = two_people

    with pytest.raises(ApplicationError, match=exactly("A patient cannot be merged into itself.")):
        patient_merge(actor=steward, survivor=alma, duplicate=alma, reason="same")
    patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")
    with pytest.raises(ApplicationError, match=exactly("That patient was already merged into another one.")):
        patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="again")
    assert PatientMerge.objects.count() == 1


def test_an_unmerge_needs_a_reason_happens_once_and_waits_for_later_merges(
    two_people: tuple[Patient, Patient], steward: User
) -> None:
    alma, olga = two_people
    merge = patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")
    third = Patient.objects.create()
    later = patient_merge(actor=steward, survivor=third, duplicate=alma, reason="one person")

    with pytest.raises(ApplicationError, match=exactly("An unmerge needs a reason.")):
        patient_unmerge(actor=steward, merge=merge, reason=" ")
    with pytest.raises(
        ApplicationError, match=exactly("The survivor was merged again since: undo that merge first.")
    ):
        patient_unmerge(actor=steward, merge=merge, reason="wrong")
    patient_unmerge(actor=steward, merge=later, reason="wrong")
    patient_unmerge(actor=steward, merge=merge, reason="wrong")
    with pytest.raises(ApplicationError, match=exactly("This merge was already undone.")):
        patient_unmerge(actor=steward, merge=merge, reason="wrong")


def test_confirming_a_possible_match_links_the_record_manually(
    hospital: Source, land: Land, steward: User
) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    review = MatchReview.objects.get(status=MatchReview.Status.OPEN)
    own_patient = record(hospital, "h-2").link.patient

    decided = match_review_decide(actor=steward, review=review, same_person=True)

    assert (decided.status, decided.decided_by_id) == (MatchReview.Status.CONFIRMED, steward.pk)
    assert decided.decided_at is not None
    link = link_of(hospital, "h-2")
    assert (link.patient_id, link.state, link.origin, link.decided_by_id, link.reason) == (
        record(hospital, "h-1").link.patient_id,
        PatientLink.State.MATCH,
        PatientLink.Origin.MANUAL,
        steward.pk,
        "steward: same person",
    )
    own_patient.refresh_from_db()
    assert (own_patient.is_active, own_patient.merged_into_id) == (False, link.patient_id)
    with pytest.raises(ApplicationError, match=exactly("This review is already decided.")):
        match_review_decide(actor=steward, review=review, same_person=False)


def test_rejecting_a_possible_match_keeps_the_record_apart_manually(
    hospital: Source, land: Land, steward: User
) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    review = MatchReview.objects.get(status=MatchReview.Status.OPEN)
    own_patient_id = record(hospital, "h-2").link.patient_id

    decided = match_review_decide(
        actor=steward, review=review, same_person=False, reason="mother and daughter"
    )

    assert (decided.status, decided.decided_by_id) == (MatchReview.Status.REJECTED, steward.pk)
    link = link_of(hospital, "h-2")
    assert (link.patient_id, link.state, link.origin, link.reason) == (
        own_patient_id,
        PatientLink.State.NO_MATCH,
        PatientLink.Origin.MANUAL,
        "mother and daughter",
    )
    assert Patient.objects.filter(is_active=True).count() == 2


def test_confirming_possible_duplicates_merges_the_two_patients(
    hospital: Source, clinic: Source, land: Land, steward: User
) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))
    review = MatchReview.objects.get(kind=MatchReview.Kind.POSSIBLE_DUPLICATE, status=MatchReview.Status.OPEN)
    assert review.other_patient is not None
    survivor, duplicate = review.patient, review.other_patient

    match_review_decide(actor=steward, review=review, same_person=True, reason="one person")

    review.refresh_from_db()
    assert review.status == MatchReview.Status.CONFIRMED
    merge = PatientMerge.objects.get()
    assert (merge.survivor_id, merge.duplicate_id, merge.reason) == (survivor.pk, duplicate.pk, "one person")
    duplicate.refresh_from_db()
    assert patient_resolve(duplicate) == survivor
    assert sorted(
        PatientLink.objects.filter(patient=survivor).values_list(
            "source_patient__source_record_id", flat=True
        )
    ) == [
        "h-1",
        "h-2",
    ]


# Commands.


def population_land(land: Land, sources: dict[str, Source], *, people: int, seed: int) -> int:
    """The EHR Patients of a generated population, one batch Bundle per source; returns how many."""
    entries: dict[str, list[JSON]] = {name: [] for name in sources}
    for found in generate_population(people=people, seed=seed).records:
        if found.source not in sources:
            continue
        for entry in found.payload["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                entries[found.source].append({"resource": patient_resource_normalize(entry["resource"])})
    for name, source in sources.items():
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries[name]}
        payload = land(source, as_bytes(bundle))
        assert payload.status == "accepted", payload.problems
    return sum(len(found) for found in entries.values())


@pytest.fixture
def population(hospital: Source, clinic: Source, land: Land) -> int:
    return population_land(land, {HOSPITAL_EHR: hospital, CLINIC_EHR: clinic}, people=80, seed=11)


def test_mpi_train_fits_and_activates_a_model(population: int) -> None:
    out = io.StringIO()

    call_command("mpi_train", "--max-pairs", "20000", stdout=out)

    model = MatchModel.objects.get(is_active=True)
    assert (model.record_count, model.summary["records"]) == (population, population)
    assert (model.auto_match_probability, model.review_probability) == (0.99, 0.5)
    assert set(model.term_frequencies) == {"given", "family"}
    assert active_weights().model_id == model.pk
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"match model {model.pk} trained on {population} records and activated")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "given_name", "family_name", "birth_date", "sex", "phone", "email", "address", "identifier", "ssn",
    ]  # fmt: skip


def test_mpi_train_takes_thresholds_and_replaces_the_active_model(population: int, tmp_path: Path) -> None:
    call_command("mpi_train", "--max-pairs", "20000", stdout=io.StringIO())
    exported = tmp_path / "model.json"

    call_command(
        "mpi_train",
        "--max-pairs", "20000", "--auto-match-probability", "0.995", "--review-probability", "0.6",
        "--export", str(exported),
        stdout=io.StringIO(),
    )  # fmt: skip

    assert MatchModel.objects.count() == 2
    model = MatchModel.objects.get(is_active=True)
    assert (model.auto_match_probability, model.review_probability) == (0.995, 0.6)
    assert exported.read_text(encoding="utf-8").startswith("{")


def test_mpi_train_refuses_too_few_records_and_bad_thresholds_before_training(
    hospital: Source, land: Land
) -> None:
    with pytest.raises(CommandError, match=exactly("Training needs at least two stored patient records.")):
        call_command("mpi_train", stdout=io.StringIO())
    send(land, hospital, person("h-1"), person("h-2", **OLGA))
    with pytest.raises(
        CommandError, match=exactly("Thresholds must satisfy 0 < review < automatic match < 1.")
    ):
        call_command(
            "mpi_train",
            "--auto-match-probability",
            "0.4",
            "--review-probability",
            "0.6",
            stdout=io.StringIO(),
        )
    assert MatchModel.objects.count() == 0


def test_mpi_train_on_records_too_few_to_learn_from_fails_with_a_message(
    hospital: Source, land: Land
) -> None:
    send(land, hospital, person("h-1"), person("h-2", **OLGA))

    with pytest.raises(
        CommandError,
        match=r'^Training failed: Training rule `l\."birth_date" = r\."birth_date"` resulted in no record pairs\.',
    ):
        call_command("mpi_train", stdout=io.StringIO())

    assert MatchModel.objects.count() == 0


def test_mpi_relink_with_a_trained_model_scores_like_online_and_keeps_one_link_per_record(
    population: int,
) -> None:
    call_command("mpi_train", "--max-pairs", "20000", stdout=io.StringIO())
    out, err = io.StringIO(), io.StringIO()

    call_command("mpi_relink", "--quiet", stdout=out, stderr=err)

    assert err.getvalue() == ""  # no "pairs scored differently by Splink and online" warning
    assert out.getvalue().startswith(f"re-linked {population} records (")
    assert PatientLink.objects.count() == SourcePatient.objects.count() == population
    model = MatchModel.objects.get(is_active=True)
    assert set(PatientLink.objects.values_list("match_model_id", flat=True)) == {model.pk}
    assert set(PatientLink.objects.values_list("origin", flat=True)) == {PatientLink.Origin.AUTO}
    assert not Patient.objects.filter(is_active=True, links__isnull=True).exists()


def test_mpi_relink_twice_changes_nothing_the_second_time(population: int) -> None:
    call_command("mpi_relink", "--quiet", stdout=io.StringIO())
    before = links()
    out = io.StringIO()

    call_command("mpi_relink", "--quiet", stdout=out)

    assert links() == before
    assert "; 0 links changed; 0 golden patients created, 0 retired" in out.getvalue()


def test_mpi_relink_keeps_the_possible_duplicate_review(hospital: Source, clinic: Source, land: Land) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))
    assert MatchReview.objects.filter(kind=MatchReview.Kind.POSSIBLE_DUPLICATE, status="open").count() == 1

    call_command("mpi_relink", "--quiet", stdout=io.StringIO())

    assert MatchReview.objects.filter(kind=MatchReview.Kind.POSSIBLE_DUPLICATE, status="open").count() == 1


def test_mpi_relink_keeps_a_rejection_by_a_steward(hospital: Source, land: Land, steward: User) -> None:
    send(land, hospital, person("h-1"))
    send(land, hospital, person("h-2"))
    review = MatchReview.objects.get(status=MatchReview.Status.OPEN)
    match_review_decide(actor=steward, review=review, same_person=False, reason="mother and daughter")
    before = links()

    call_command("mpi_relink", "--quiet", stdout=io.StringIO())

    assert links() == before
    assert MatchReview.objects.filter(status=MatchReview.Status.OPEN).count() == 0


HEADER = ["source", "source_record_id", "patient_id", "state", "score"]


def test_export_links_writes_one_row_per_record(
    hospital: Source, clinic: Source, land: Land, tmp_path: Path
) -> None:
    send(land, hospital, person("h-1"), person("h-2", **OLGA))
    send(land, clinic, person("c-1", mrn_system="urn:oid:clinic"))
    out = tmp_path / "links.csv"
    err = io.StringIO()

    call_command("export_links", "--out", str(out), stderr=err)

    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "source,source_record_id,patient_id,state,score"
    rows = list(csv.reader(io.StringIO(text)))
    alma = str(record(hospital, "h-1").link.patient.external_id)
    olga = str(record(hospital, "h-2").link.patient.external_id)
    score = link_of(clinic, "c-1").score
    assert score is not None
    assert rows == [
        HEADER,
        ["clinic-ehr", "c-1", alma, "MATCH", f"{score:.6f}"],
        ["hospital-ehr", "h-1", alma, "NO_MATCH", ""],
        ["hospital-ehr", "h-2", olga, "NO_MATCH", ""],
    ]
    assert err.getvalue() == f"3 links written to {out}\n"


def test_export_links_writes_to_standard_output_without_a_file(
    hospital: Source, land: Land, capsys: pytest.CaptureFixture[str]
) -> None:
    send(land, hospital, person("h-1"))

    call_command("export_links")

    alma = str(record(hospital, "h-1").link.patient.external_id)
    assert (
        capsys.readouterr().out
        == f"source,source_record_id,patient_id,state,score\nhospital-ehr,h-1,{alma},NO_MATCH,\n"
    )


def test_export_links_gives_the_pid3_medical_record_number_of_an_hl7_record(
    hospital: Source, land: Land, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "\r".join(
        [
            "MSH|^~\\&|ADT|GOOD HOSP|HUB|CONCORD|20240301120000||ADT^A28^ADT_A05|REG-1|P|2.5",
            "EVN|A28|20240301120000",
            "PID|1||MRN-1^^^GOOD HOSP^MR||Testperson^Alex||19800102|F",
        ]
    ).encode()
    payload = land(hospital, message, format="hl7v2")
    assert payload.status == "accepted", payload.problems

    call_command("export_links")

    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [row[:2] for row in rows[1:]] == [["hospital-ehr", "MRN-1"]]


def test_export_links_after_a_merge_names_the_survivor(
    two_people: tuple[Patient, Patient], steward: User, tmp_path: Path
) -> None:
    alma, olga = two_people
    patient_merge(actor=steward, survivor=alma, duplicate=olga, reason="one person")
    out = tmp_path / "links.csv"

    call_command("export_links", "--out", str(out), stderr=io.StringIO())

    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {row["patient_id"] for row in rows} == {str(alma.external_id)}
    assert len(rows) == 5


def test_mpi_relink_writes_again_features_and_keys_an_upgrade_outdated(hospital: Source, land: Land) -> None:
    from patients.matching.features import FEATURES_VERSION, blocking_keys
    from patients.models import MatchKey

    send(land, hospital, person("h-1"))
    stored = record(hospital, "h-1")
    current_keys = sorted(MatchKey.objects.filter(source_patient=stored).values_list("key", flat=True))
    assert current_keys == blocking_keys(stored.match_features)
    # As an older release left it: features of another version, and fewer keys.
    SourcePatient.objects.filter(pk=stored.pk).update(match_features={**stored.match_features, "version": 1})
    MatchKey.objects.filter(source_patient=stored).exclude(key=current_keys[0]).delete()

    call_command("mpi_relink", "--quiet", stdout=io.StringIO())

    refreshed = SourcePatient.objects.get(pk=stored.pk)
    assert refreshed.match_features["version"] == FEATURES_VERSION
    assert (
        sorted(MatchKey.objects.filter(source_patient=stored).values_list("key", flat=True)) == current_keys
    )
