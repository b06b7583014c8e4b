"""Matching features of a normalized FHIR Patient: nicknames, placeholders, birth dates and blocking keys."""

from typing import Any

import pytest

from patients.matching.features import (
    blocking_keys,
    day_month_sorted,
    given_name_groups,
    is_placeholder,
    patient_features,
    phonetic,
)
from patients.normalize import patient_resource_normalize

JSON = dict[str, Any]


def resource(given: list[str], family: str, birth_date: str | None = "1980-03-07", **extra: Any) -> JSON:
    """A Patient with a name, sex and birth date only: no contact data, so keys come from name and date."""
    found: JSON = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": given}],
        "gender": "female",
        **extra,
    }
    if birth_date is not None:
        found["birthDate"] = birth_date
    return found


def shared_keys(first: JSON, second: JSON) -> list[str]:
    return sorted(set(blocking_keys(patient_features(first))) & set(blocking_keys(patient_features(second))))


@pytest.mark.parametrize(
    ("name", "other", "shared"),
    [
        ("William", "Bill", "william"),
        ("William", "Liam", "william"),
        ("Bill", "Liam", "william"),
        ("WILLIAM", "bill", "william"),
        ("Margaret", "Peggy", "margaret"),
    ],
)
def test_nicknames_share_a_formal_name(name: str, other: str, shared: str) -> None:
    assert shared in set(given_name_groups(name)) & set(given_name_groups(other))


def test_a_nickname_stands_for_its_formal_name_only() -> None:
    assert given_name_groups("Liam") == ["william"]


@pytest.mark.parametrize(("name", "other"), [("William", "Margaret"), ("Peggy", "Liam"), ("Anna", "Zoe")])
def test_unrelated_given_names_share_no_formal_name(name: str, other: str) -> None:
    assert set(given_name_groups(name)) & set(given_name_groups(other)) == set()


def test_a_name_missing_from_the_table_stands_for_itself_without_diacritics() -> None:
    assert given_name_groups("Zéphyrine") == ["zephyrine"]
    assert given_name_groups("") == []
    assert given_name_groups("  -- ") == []


@pytest.mark.parametrize(
    ("birth_date", "expected"),
    [
        ("1980-07-03", "1980-03-07"),
        ("1980-03-07", "1980-03-07"),
        ("1980-12-05", "1980-05-12"),
        ("1980-05-12", "1980-05-12"),
        ("1980-11-11", "1980-11-11"),
        ("", ""),
    ],
)
def test_day_and_month_are_sorted(birth_date: str, expected: str) -> None:
    assert day_month_sorted(birth_date) == expected


def test_a_swapped_day_and_month_give_the_same_sorted_date() -> None:
    swapped = patient_features(resource(["Anna"], "Quigley", "1980-07-03"))
    original = patient_features(resource(["Anna"], "Quigley", "1980-03-07"))

    assert swapped["birth_date_sorted"] == original["birth_date_sorted"] == "1980-03-07"
    assert swapped["birth_date"] == "1980-07-03"


@pytest.mark.parametrize(
    ("given", "family", "birth_date"),
    [
        (["John"], "Doe", "1971-05-02"),
        (["Jane"], "Doe", "1971-05-02"),
        (["Baby", "Girl"], "Quigley", "2024-01-15"),
        (["Baby Girl"], "Quigley", "2024-01-15"),
        (["Baby"], "Boy", "2024-01-15"),
        (["Unknown"], "Quigley", "1971-05-02"),
        (["Anna"], "Unknown", "1971-05-02"),
        (["Test"], "Patient", "1971-05-02"),
        (["Anna"], "Quigley", "1900-01-01"),
        ([], "", "1971-05-02"),
    ],
)
def test_placeholder_identities_are_recognized(given: list[str], family: str, birth_date: str) -> None:
    assert patient_features(resource(given, family, birth_date))["placeholder"] is True


@pytest.mark.parametrize(
    ("given", "family", "birth_date"),
    [
        (["Anna"], "Quigley", "1971-05-02"),
        (["John"], "Quigley", "1900-01-02"),
        (["Jane"], "Dow", "1971-05-02"),
        (["Anna"], "Quigley", None),
    ],
)
def test_real_people_are_not_placeholders(given: list[str], family: str, birth_date: str | None) -> None:
    assert patient_features(resource(given, family, birth_date))["placeholder"] is False


def test_is_placeholder_reads_the_features() -> None:
    features = patient_features(resource(["Anna"], "Quigley"))

    assert is_placeholder(features) is False
    assert is_placeholder({**features, "given": "john", "family": "doe"}) is True
    assert is_placeholder({**features, "birth_date": "1900-01-01"}) is True


def test_features_of_a_full_normalized_patient() -> None:
    normalized = patient_resource_normalize(
        {
            "resourceType": "Patient",
            "identifier": [
                {"system": "urn:oid:1.2.3", "value": "mrn-77"},
                {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"},
                {"system": "urn:oid:1.2.3", "value": "OLD-1", "use": "old"},
                {"value": "no-system"},
            ],
            "name": [
                {"use": "usual", "given": ["Peggy"], "family": "Smith"},
                {
                    "use": "official",
                    "family": "O'Brien-Núñez",
                    "given": ["José María", "Luis"],
                    "suffix": ["Jr."],
                },
            ],
            "gender": "male",
            "birthDate": "1980-07-03",
            "telecom": [
                {"system": "phone", "value": "(617) 555-0134", "use": "home"},
                {"system": "email", "value": "Jose.OBrien@Example.org"},
                {"system": "phone", "value": "12"},
            ],
            "address": [
                {"use": "old", "line": ["1 Old Road"], "postalCode": "99999"},
                {
                    "use": "home",
                    "line": ["12 Elm St.", "Apt 4"],
                    "city": "South Boston",
                    "postalCode": "02108-1234",
                },
            ],
        }
    )

    features = patient_features(normalized)

    assert features == {
        "given": "jose",
        "given_groups": ["jose"],
        "given_others": ["maria", "luis"],
        "family": "obriennunez",
        "family_tokens": ["obrien", "nunez"],
        "suffix": "jr",
        "birth_date": "1980-07-03",
        "birth_date_sorted": "1980-03-07",
        "sex": "male",
        "phones": ["+16175550134"],
        "mobile_phones": [],
        "emails": ["jose.obrien@example.org"],
        "street": "12 elm st",
        "city": "southboston",
        "postal_code": "02108",
        "identifiers": ["urn:oid:1.2.3|MRN-77"],
        "identifier_systems": ["urn:oid:1.2.3"],
        "ssn": "123456789",
        "placeholder": False,
    }
    assert blocking_keys(features) == [
        "a:02108:12",
        "df:1980-03-07:OBRANAN",
        "dg:1980-03-07:JAS",
        "dg:1980-03-07:jose",
        "dy:07-03:OBR:j",
        "dz:1980-07-03:0",
        "e:jose.obrien@example.org",
        "i:urn:oid:1.2.3|MRN-77",
        "n:OBRANAN:JAS",
        "p:+16175550134",
        "s:123456789",
        "z:02108:j:O",
        "zm:02108:07-03",
    ]


@pytest.mark.parametrize(
    ("family", "tokens"),
    [
        ("O'Brien", ["obrien"]),
        ("O\u2019Connor", ["oconnor"]),
        ("de la Cruz", ["cruz"]),
        ("Van Dyke", ["dyke"]),
        ("García López", ["garcia", "lopez"]),
        ("Smith-Jones", ["smith", "jones"]),
    ],
)
def test_family_name_parts_leave_out_apostrophes_particles_and_initials(
    family: str, tokens: list[str]
) -> None:
    assert patient_features(resource(["Anna"], family))["family_tokens"] == tokens


def test_an_apostrophe_does_not_split_a_given_name() -> None:
    features = patient_features(resource(["D'Andre"], "Quigley"))

    assert (features["given"], features["given_others"]) == ("dandre", [])


def test_phonetic_codes_survive_a_spelling_variant() -> None:
    assert phonetic("Margaret") == phonetic("Margeret") == "MARGARAT"
    assert phonetic("") == ""


BASE = resource(["Margaret", "Anne"], "Smith")


def test_blocking_keys_of_a_name_and_birth_date() -> None:
    assert blocking_keys(patient_features(BASE)) == [
        "df:1980-03-07:SNAT",
        "dg:1980-03-07:MARGARAT",
        "dg:1980-03-07:gretchen",
        "dg:1980-03-07:margaret",
        "dg:1980-03-07:marge",
        "dy:03-07:SNA:m",
        "dz:1980-03-07:",
        "n:SNAT:MARGARAT",
    ]


def test_records_whose_names_are_both_mistyped_still_share_a_key() -> None:
    """FEBRL-style corruption: neither name keeps its phonetic code; birth date and address still tell."""
    address: list[JSON] = [{"line": ["42 Harbour Road"], "city": "Boston", "postalCode": "02108"}]
    original = resource(["Mikhayla"], "Hannagan", address=address)
    corrupted = resource(["Hannagan"], "Mikhvyla", address=address)
    wrong_year = resource(["Mikaila"], "Hanigan", birth_date="1986-03-07", address=address)
    other_house = resource(["Mikaila"], "Hanigan", birth_date="1986-03-07", address=[{"postalCode": "02109"}])

    assert [key for key in shared_keys(original, corrupted) if key[:2] in ("a:", "dz", "zm")] == [
        "a:02108:42",
        "dz:1980-03-07:0",
        "zm:02108:03-07",
    ]
    assert [key for key in shared_keys(original, wrong_year) if key[:2] in ("a:", "dz", "zm")] == [
        "a:02108:42",
        "zm:02108:03-07",
    ]
    assert [key for key in shared_keys(original, other_house) if key[:2] in ("a:", "dz", "zm")] == []


@pytest.mark.parametrize(
    ("corrupted", "shared"),
    [
        pytest.param(
            resource(["Margaret", "Anne"], "Jones"),
            [
                "dg:1980-03-07:MARGARAT",
                "dg:1980-03-07:gretchen",
                "dg:1980-03-07:margaret",
                "dg:1980-03-07:marge",
                "dz:1980-03-07:",
            ],
            id="married name",
        ),
        pytest.param(
            resource(["Peggy"], "Smith"),
            ["df:1980-03-07:SNAT", "dg:1980-03-07:margaret", "dz:1980-03-07:"],
            id="nickname",
        ),
        pytest.param(
            resource(["Margaret", "Anne"], "Smith", "1980-07-03"),
            [
                "df:1980-03-07:SNAT",
                "dg:1980-03-07:MARGARAT",
                "dg:1980-03-07:gretchen",
                "dg:1980-03-07:margaret",
                "dg:1980-03-07:marge",
                "n:SNAT:MARGARAT",
            ],
            id="day and month swapped",
        ),
        pytest.param(
            resource(["Margaret"], "Smith", "1908-03-07"),
            ["dy:03-07:SNA:m", "n:SNAT:MARGARAT"],
            id="year digits wrong",
        ),
        pytest.param(
            resource(["Margeret"], "Smith"),
            [
                "df:1980-03-07:SNAT",
                "dg:1980-03-07:MARGARAT",
                "dy:03-07:SNA:m",
                "dz:1980-03-07:",
                "n:SNAT:MARGARAT",
            ],
            id="given name typo",
        ),
        pytest.param(
            resource(["Margaret"], "Smyth"),
            [
                "dg:1980-03-07:MARGARAT",
                "dg:1980-03-07:gretchen",
                "dg:1980-03-07:margaret",
                "dg:1980-03-07:marge",
                "dz:1980-03-07:",
            ],
            id="family name typo",
        ),
        pytest.param(
            resource(["Anne"], "Smith"),
            ["df:1980-03-07:SNAT", "dz:1980-03-07:"],
            id="known by the middle name",
        ),
        pytest.param(resource(["Margaret"], "Smith", None), ["n:SNAT:MARGARAT"], id="birth date missing"),
    ],
)
def test_blocking_keys_survive_one_corrupted_field(corrupted: JSON, shared: list[str]) -> None:
    assert shared_keys(BASE, corrupted) == shared


def test_a_married_name_and_a_swapped_birth_date_together_still_share_a_key() -> None:
    assert shared_keys(BASE, resource(["Margaret"], "Jones", "1980-07-03")) == [
        "dg:1980-03-07:MARGARAT",
        "dg:1980-03-07:gretchen",
        "dg:1980-03-07:margaret",
        "dg:1980-03-07:marge",
    ]


def test_a_married_name_and_a_nickname_together_still_share_a_key() -> None:
    assert shared_keys(BASE, resource(["Peggy"], "Jones")) == ["dg:1980-03-07:margaret", "dz:1980-03-07:"]


def test_contact_details_and_identifiers_are_keys_of_their_own() -> None:
    moved = resource(
        ["Olga"],
        "Petrova",
        "1955-10-21",
        telecom=[
            {"system": "phone", "value": "+16175550134"},
            {"system": "email", "value": "olga@example.org"},
        ],
        identifier=[{"system": "urn:mrn", "value": "a-1"}],
    )
    same_contacts = resource(
        ["Anna"],
        "Quigley",
        None,
        telecom=[
            {"system": "sms", "value": "+16175550134"},
            {"system": "email", "value": "OLGA@example.org"},
        ],
        identifier=[{"system": "urn:mrn", "value": "A-1"}],
    )

    assert shared_keys(moved, same_contacts) == ["e:olga@example.org", "i:urn:mrn|A-1", "p:+16175550134"]


def test_different_people_share_no_key() -> None:
    assert shared_keys(BASE, resource(["Olga"], "Petrova", "1955-10-21")) == []


def test_twins_share_keys_so_that_the_decision_sees_them() -> None:
    assert shared_keys(resource(["Emma"], "Clark"), resource(["Noah"], "Clark")) == [
        "df:1980-03-07:CLARC",
        "dz:1980-03-07:",
    ]
