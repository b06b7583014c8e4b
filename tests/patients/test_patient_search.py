"""Patient search by a misspelled name, on PostgreSQL, with the patients landed through the real pipeline."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from core.permissions import object_permission_grant
from core.roles import CARE_COORDINATOR
from patients import selectors
from patients.apps import _levenshtein_less_equal
from patients.matching.features import given_phonetic, phonetic
from patients.models import InboundPayload, Patient
from patients.selectors import golden_patient_search
from patients.services import source_create
from tests.patients.conftest import as_bytes, patient, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

Land = Callable[..., InboundPayload]


def _person(number: int, given: list[str], family: str) -> dict[str, Any]:
    """A patient of their own: a birth date and an address nobody else in these tests has, no phone."""
    return patient(
        f"p-{number}",
        name=[{"use": "official", "family": family, "given": given}],
        birthDate=f"19{50 + number}-0{1 + number % 9}-1{number % 10}",
        telecom=[],
        address=[
            {"line": [f"{number} Main street"], "city": f"Town {number}", "postalCode": f"0{number:04d}"}
        ],
    )


@pytest.fixture
def people(land: Land) -> dict[str, Patient]:
    """Golden patients by "given family", one source each (several names are short or compound)."""
    names = [
        (["Enzo Gabriel"], "Pimenta"),  # one given element of two words, as CSV exports send it
        (["Ping"], "Ye"),
        (["Mary"], "Ray"),
        (["Liam", "Gustavo"], "da Rocha"),
        (["Teodoro"], "Rentería"),
        (["Alma"], "Quigley"),
        (["James"], "Smith"),
    ]
    ehr = source_create(actor=None, slug="hospital-ehr", name="Hospital EHR")
    land(
        ehr,
        as_bytes(
            transaction(*[_person(number, given, family) for number, (given, family) in enumerate(names)])
        ),
    )
    found = {
        f"{golden.given_names} {golden.family_name}": golden
        for golden in Patient.objects.filter(is_active=True)
    }
    assert len(found) == len(names)
    return found


def _found(user: User, query: str) -> list[str]:
    return [
        f"{hit.patient.given_names} {hit.patient.family_name}"
        for hit in golden_patient_search(user=user, query=query)
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Enzo Pimenat", "Enzo Gabriel Pimenta"),  # the first of compound given names is compared
        ("Ping Yr", "Ping Ye"),  # one letter wrong in a two-letter name
        ("Mary Rya", "Mary Ray"),  # two letters swapped in a three-letter name
        ("Liam da Rcoha", "Liam Gustavo da Rocha"),  # a family name of two words
        ("Teodoro Rentreía", "Teodoro Rentería"),  # letters swapped, the accent kept
        ("Teodoro Renteria", "Teodoro Rentería"),  # the accent left out
        ("Alma Qui", "Alma Quigley"),  # typing: the family name begun
        ("Jimmy Smiht", "James Smith"),  # a nickname and a swap
        ("Smiht, James", "James Smith"),  # family name first
    ],
)
def test_a_misspelled_name_finds_the_person(
    people: dict[str, Patient], role_users: dict[str, User], query: str, expected: str
) -> None:
    found = _found(role_users[CARE_COORDINATOR], query)

    assert found[0] == expected, found


def test_namesakes_beyond_the_candidate_limit_do_not_hide_a_misspelled_family_name(
    land: Land, role_users: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many people share the first name and the typo breaks the family name's phonetic code: candidates
    must be those close on both names, not the first of everyone called James."""
    ehr = source_create(actor=None, slug="hospital-ehr", name="Hospital EHR")
    namesakes = [
        _person(number, ["James"], family)
        for number, family in enumerate(["Adams", "Baker", "Clark", "Davis"])
    ]
    land(ehr, as_bytes(transaction(*namesakes, _person(9, ["James"], "Smith"))))
    monkeypatch.setattr(selectors, "_CANDIDATE_LIMIT", 3)
    assert Patient.objects.filter(given_phonetic=given_phonetic("James")).count() == 5

    assert phonetic("Simth") != phonetic("Smith")
    assert _found(role_users[CARE_COORDINATOR], "James Simth") == ["James Smith"]


def test_names_that_are_not_a_typo_apart_are_not_found(
    people: dict[str, Patient], role_users: dict[str, User]
) -> None:
    assert _found(role_users[CARE_COORDINATOR], "Ping Zhao") == []
    assert _found(role_users[CARE_COORDINATOR], "Mary Jones") == []


def test_compound_given_names_are_coded_by_their_first_name(people: dict[str, Patient]) -> None:
    enzo = people["Enzo Gabriel Pimenta"]

    assert enzo.given_phonetic == phonetic("Enzo") != phonetic("Enzo Gabriel")


@pytest.mark.parametrize("query", [",", " , ", ",,"])
def test_punctuation_alone_finds_nobody_and_answers(
    people: dict[str, Patient], coordinator_client: Client, query: str
) -> None:
    response = coordinator_client.get("/patients/search/", {"q": query}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert "/patients/" not in response.content.decode().replace("/patients/search/", "")


@pytest.mark.parametrize(
    ("text", "other", "limit"),
    [
        ("smith", "smiht", 2),
        ("ye", "yr", 2),
        ("rentería", "rentreia", 2),
        ("quigley", "adams", 2),
        ("", "ab", 1),
        ("a", "a", 0),
    ],
)
def test_the_sqlite_edit_distance_agrees_with_postgresql(text: str, other: str, limit: int) -> None:
    """The embedded SQLite database gets the same ``levenshtein_less_equal`` as PostgreSQL's fuzzystrmatch."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT levenshtein_less_equal(%s, %s, %s)", [text, other, limit])
        (postgresql,) = cursor.fetchone()

    ours = _levenshtein_less_equal(text, other, limit)
    assert ours is not None
    assert (ours <= limit) == (postgresql <= limit)
    if postgresql <= limit:
        assert ours == postgresql


def test_a_user_granted_patients_one_by_one_finds_what_the_coordinator_finds_among_them(
    people: dict[str, Patient], role_users: dict[str, User], django_user_model: type[User]
) -> None:
    """Without the model permission the statements take the object permissions' subquery: same hits, same
    order, same scores, only the patients granted."""
    nurse = django_user_model.objects.create_user("nurse", password="x-long-enough-password")
    hidden = {"James Smith", "Alma Quigley"}
    for name, golden in people.items():
        if name not in hidden:
            object_permission_grant(perm="patients.view_patient", grantee=nurse, obj=golden)
    coordinator = role_users[CARE_COORDINATOR]
    queries = ["Jimmy Smiht", "Alma Qui", "Smith", "Quigley, Alma", "Ye", "Enzo Pimenat", "Mary Rya"]

    for query in queries:
        everyone = [
            (f"{hit.patient.given_names} {hit.patient.family_name}", hit.score)
            for hit in golden_patient_search(user=coordinator, query=query)
        ]
        granted = [
            (f"{hit.patient.given_names} {hit.patient.family_name}", hit.score)
            for hit in golden_patient_search(user=nurse, query=query)
        ]
        assert everyone, query
        assert granted == [(name, score) for name, score in everyone if name not in hidden], query
    alma = people["Alma Quigley"]
    born = golden_patient_search(user=nurse, query="", birth_date=alma.birth_date)
    assert born == []
    assert [
        hit.patient.pk
        for hit in golden_patient_search(user=coordinator, query="", birth_date=alma.birth_date)
    ] == [alma.pk]


def test_a_result_holds_what_its_row_shows_in_few_statements(
    people: dict[str, Patient], role_users: dict[str, User], django_assert_num_queries: Any
) -> None:
    """A name search is two statements (candidates, then the rows shown); nothing else is read."""
    alma = people["Alma Quigley"]
    coordinator = role_users[CARE_COORDINATOR]
    assert coordinator.has_perm("patients.view_patient")  # a request's user comes with its permissions
    with django_assert_num_queries(2):
        (hit,) = golden_patient_search(user=coordinator, query="Alma Quigly")

    shown = hit.patient
    assert (shown.pk, shown.external_id, shown.birth_date) == (alma.pk, alma.external_id, alma.birth_date)
    assert (shown.given_names, shown.family_name, shown.gender, shown.city) == (
        alma.given_names,
        alma.family_name,
        alma.gender,
        alma.city,
    )
    assert hit.sources == alma.record["sources"] == ["hospital-ehr"]
    assert hit.matched_on == "name"
    assert hit.score > 1.7


@pytest.mark.parametrize("candidate_limit", [None, 3])
def test_a_name_typed_alone_ranks_as_the_general_name_similarity_does(
    land: Land, role_users: dict[str, User], monkeypatch: pytest.MonkeyPatch, candidate_limit: int | None
) -> None:
    """A name typed alone is ranked in the database from its names' scores: the same scores, cut and order
    as ``_name_similarity`` over the candidates (the first _CANDIDATE_LIMIT by id when there are more)."""
    names: list[dict[str, Any]] = [
        {"given": ["Ana María"], "family": "Peña"},
        {"given": ["Smith"], "family": "Jones"},  # the typed name as a first given name
        {"family": "Smyth"},  # no given name
        {"given": ["John"]},  # no family name
        {"given": ["John Paul"], "family": "Smith"},
        {"given": ["John"], "family": "Smith"},
        {"given": ["Adam"], "family": "Smith"},
        {"given": ["Sam"], "family": "Schmidt"},
        {"given": ["Zed"], "family": "Quill"},  # too far from anything typed: cut
        {"given": ["Jon"], "family": "Pena"},
    ]
    people = [
        _person(number, [], "") | {"name": [{"use": "official", **name}]} for number, name in enumerate(names)
    ]
    ehr = source_create(actor=None, slug="hospital-ehr", name="Hospital EHR")
    land(ehr, as_bytes(transaction(*people)))
    if candidate_limit is not None:
        monkeypatch.setattr(selectors, "_CANDIDATE_LIMIT", candidate_limit)
    patients = list(Patient.objects.filter(is_active=True).order_by("pk"))
    assert len(patients) == len(names)

    beyond_the_limit = set()
    for typed in ("smith", "pena", "jon", "quil", "john"):
        code = phonetic(typed)
        candidates = [
            golden for golden in patients if code in (golden.family_phonetic, golden.given_phonetic)
        ]
        if candidate_limit is not None and len(candidates) > candidate_limit:
            beyond_the_limit.add(typed)
            candidates = candidates[:candidate_limit]
        expected = sorted(
            (-score, golden.family_name, golden.given_names, golden.pk)
            for golden in candidates
            if (score := selectors._name_similarity("", typed, golden.given_names, golden.family_name))
            >= 0.85
        )
        hits = golden_patient_search(user=role_users[CARE_COORDINATOR], query=typed)

        assert [(hit.patient.pk, hit.score) for hit in hits] == [
            (pk, -negative) for negative, _, _, pk in expected
        ]
        assert hits or typed == "quil", typed
    assert beyond_the_limit == (set() if candidate_limit is None else {"smith", "jon", "john"})
