"""Ingest normalization of FHIR R4 dicts: exact examples, properties, and that results still parse as FHIR."""

import copy
import datetime
import json
import re
from typing import Any

import pytest
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from hypothesis import given
from hypothesis import strategies as st

from patients.normalize import (
    ADMINISTRATIVE_GENDERS,
    DIRECTIONALS,
    ORIGINAL_VALUE_URL,
    STREET_SUFFIXES,
    UNIT_DESIGNATORS,
    US_STATES,
    NormalizedAddress,
    NormalizedName,
    address_normalize,
    administrative_sex_normalize,
    date_parse,
    datetime_to_utc,
    email_normalize,
    name_part_normalize,
    patient_resource_normalize,
    person_name_normalize,
    phone_to_e164,
    resource_datetimes_normalize,
)


def original(value: str) -> dict[str, Any]:
    return {"extension": [{"url": ORIGINAL_VALUE_URL, "valueString": value}]}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(617) 555-0134", "+16175550134"),
        ("617.555.0134", "+16175550134"),
        ("+1 617 555 0134", "+16175550134"),
        ("6175550134 x12", "+16175550134"),
        ("617 555 0134 ext. 5", "+16175550134"),
        ("tel:+1-617-555-0134", "+16175550134"),
        ("555-555-5555", "+15555555555"),
        ("+44 20 7946 0958", "+442079460958"),
        ("", None),
        ("   ", None),
        ("N/A", None),
        ("123", None),
        ("617-555-013", None),
        ("1-800-FLOWERS", None),
        ("12345678901234567", None),
    ],
)
def test_phone_to_e164(raw: str, expected: str | None) -> None:
    assert phone_to_e164(raw) == expected


def test_phone_to_e164_reads_national_numbers_in_the_given_region() -> None:
    assert phone_to_e164("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("mailto:JANE@example.org", "jane@example.org"),
        ("MAILTO: jane@example.org", "jane@example.org"),
        ("jane@localhost", None),
        ("a@@example.com", None),
        ("jane@doe@example.com", None),
        ("jane doe@example.com", None),
        ("@example.com", None),
        ("jane@example.", None),
        ("jane@.com", None),
        ("", None),
    ],
)
def test_email_normalize(raw: str, expected: str | None) -> None:
    assert email_normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jacinto644", "Jacinto"),
        ("Schmidt639", "Schmidt"),
        ("  mary   jane ", "Mary Jane"),
        ("o'brien", "O'Brien"),
        ("mary-jane", "Mary-Jane"),
        ("MCDONALD", "Mcdonald"),
        ("McDonald", "McDonald"),
        ("van der Berg", "van der Berg"),
        ("JOSÉ", "José"),
        ("644", "644"),
        ("", ""),
    ],
)
def test_name_part_normalize(raw: str, expected: str) -> None:
    assert name_part_normalize(raw) == expected


def test_person_name_normalize_cleans_a_synthea_name() -> None:
    result = person_name_normalize(family="Schmidt639", given=["Jacinto644"], prefix=["Mr."])

    assert result == NormalizedName(family="Schmidt", given=("Jacinto",), prefix=("Mr",), suffix=())


def test_person_name_normalize_moves_suffixes_out_of_family_and_given() -> None:
    result = person_name_normalize(family="SMITH, JR.", given=["john iii", "Paul"], prefix=["dr"])

    assert result == NormalizedName(
        family="Smith", given=("John", "Paul"), prefix=("Dr",), suffix=("Jr", "III")
    )


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [("Jr", "Jr"), ("Jr.", "Jr"), ("JR", "Jr"), ("junior", "Jr"), ("sr.", "Sr"), ("ii", "II"), ("IV", "IV")],
)
def test_person_name_normalize_suffixes(suffix: str, expected: str) -> None:
    assert person_name_normalize(family="Smith", given=None, suffix=[suffix]).suffix == (expected,)


@pytest.mark.parametrize(
    ("prefix", "expected"), [("Mr.", "Mr"), ("MRS.", "Mrs"), ("ms", "Ms"), ("Dr.", "Dr"), ("Rev.", "Rev.")]
)
def test_person_name_normalize_prefixes(prefix: str, expected: str) -> None:
    assert person_name_normalize(family="Smith", given=None, prefix=[prefix]).prefix == (expected,)


def test_person_name_normalize_keeps_a_lone_suffix_word_as_the_family() -> None:
    result = person_name_normalize(family="Junior", given=["Ana"], suffix=["Jr"])

    assert result == NormalizedName(family="Junior", given=("Ana",), prefix=(), suffix=("Jr",))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("123 north main street apartment 4", "123 N Main St Apt 4"),
        ("208 Farrell Way", "208 Farrell Way"),
        ("10 Elm Avenue", "10 Elm Ave"),
        ("10 Sunset Boulevard", "10 Sunset Blvd"),
        ("10 Mill Road", "10 Mill Rd"),
        ("10 Ocean Drive", "10 Ocean Dr"),
        ("10 Maple Lane", "10 Maple Ln"),
        ("10 Kings Court", "10 Kings Ct"),
        ("10 Pine Place", "10 Pine Pl"),
        ("10 State Highway", "10 State Hwy"),
        ("10 Garden State Parkway", "10 Garden State Pkwy"),
        ("10 Oak Circle", "10 Oak Cir"),
        ("742 evergreen terrace", "742 Evergreen Ter"),
        ("55 West 42nd Street Suite 1200", "55 W 42nd St Ste 1200"),
        ("9 Northeast Flagler Drive", "9 NE Flagler Dr"),
        ("1 Main Street North", "1 Main St N"),
        ("1 N Street NW", "1 N St NW"),
        ("100 Court Street", "100 Court St"),
        ("5 North Street", "5 North St"),
        ("123 MAIN ST. APT 4b", "123 Main St Apt 4B"),
        ("12 Elm St., #3", "12 Elm St #3"),
        ("p.o. box 12", "PO Box 12"),
        ("  1   Main    St  ", "1 Main St"),
    ],
)
def test_address_normalize_us_lines(line: str, expected: str) -> None:
    result = address_normalize(lines=[line], city="Boston", state="MA", postal_code="02108", country="US")

    assert result.lines == (expected,)


@pytest.mark.parametrize(
    ("state", "expected"),
    [("massachusetts", "MA"), ("Ma", "MA"), ("MA", "MA"), (" New  York ", "NY"), ("Puerto Rico", "PR")],
)
def test_address_normalize_us_states(state: str, expected: str) -> None:
    assert (
        address_normalize(lines=None, city=None, state=state, postal_code=None, country="US").state
        == expected
    )


@pytest.mark.parametrize(
    ("postal_code", "expected"),
    [
        ("021381234", "02138-1234"),
        ("02138 1234", "02138-1234"),
        ("02138-1234", "02138-1234"),
        ("2138", "02138"),
        ("21381234", "02138-1234"),
        ("02138", "02138"),
        ("90210", "90210"),
        ("ABC 12", "ABC 12"),
    ],
)
def test_address_normalize_us_postal_codes(postal_code: str, expected: str) -> None:
    result = address_normalize(lines=None, city=None, state="MA", postal_code=postal_code, country="USA")

    assert result.postal_code == expected


@pytest.mark.parametrize("country", ["USA", "United States", "US", "u.s.a.", "united states of america"])
def test_address_normalize_us_countries(country: str) -> None:
    assert (
        address_normalize(lines=None, city=None, state=None, postal_code=None, country=country).country
        == "US"
    )


def test_address_normalize_synthea_address_is_kept() -> None:
    result = address_normalize(
        lines=["208 Farrell Way"], city="Boston", state="Massachusetts", postal_code="02108", country="US"
    )

    assert result == NormalizedAddress(
        lines=("208 Farrell Way",), city="Boston", state="MA", postal_code="02108", country="US"
    )


def test_address_normalize_without_country_uses_us_rules_for_a_us_state_only() -> None:
    result = address_normalize(lines=["1 main street"], city="BOSTON", state="ma", postal_code="2108")

    assert result == NormalizedAddress(
        lines=("1 Main St",), city="Boston", state="MA", postal_code="02108", country=""
    )


def test_address_normalize_non_us_only_cleans_whitespace() -> None:
    result = address_normalize(
        lines=["  10  Downing   street ", " "],
        city=" LONDON ",
        state=None,
        postal_code="SW1A  2AA",
        country=" GB ",
    )

    assert result == NormalizedAddress(
        lines=("10 Downing street",), city="LONDON", state="", postal_code="SW1A 2AA", country="GB"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("male", "male"),
        ("female", "female"),
        ("other", "other"),
        ("unknown", "unknown"),
        ("M", "male"),
        ("F", "female"),
        ("O", "other"),
        ("U", "unknown"),
        ("A", "other"),
        ("N", "unknown"),
        ("Male", "male"),
        ("FEMALE", "female"),
        ("f", "female"),
        ("man", "male"),
        ("Woman", "female"),
        (" m ", "male"),
        ("banana", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_administrative_sex_normalize(raw: str | None, expected: str) -> None:
    assert administrative_sex_normalize(raw) == expected


@pytest.mark.parametrize(
    "raw", ["1980-07-04", "19800704", "07/04/1980", "7/4/1980", "07-04-1980", "04.07.1980", " 1980-07-04 "]
)
def test_date_parse_default_formats(raw: str) -> None:
    assert date_parse(raw) == datetime.date(1980, 7, 4)


def test_date_parse_given_formats() -> None:
    assert date_parse("04/07/1980", formats=["%d/%m/%Y"]) == datetime.date(1980, 7, 4)


def test_date_parse_names_the_shape_not_the_value() -> None:
    with pytest.raises(
        ValueError, match=r"^date shaped '99/99/99' matches none of the accepted formats: "
    ) as error:
        date_parse("12/31/99")

    assert str(error.value) == (
        "date shaped '99/99/99' matches none of the accepted formats: "
        "YYYY-MM-DD, YYYYMMDD, MM/DD/YYYY, MM-DD-YYYY, DD.MM.YYYY"
    )


@pytest.mark.parametrize("raw", ["1980-02-30", "13/01/1980", "yesterday", ""])
def test_date_parse_refuses_impossible_dates(raw: str) -> None:
    with pytest.raises(ValueError, match="matches none of the accepted formats"):
        date_parse(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-01-01T10:00:00-05:00", ("2020-01-01T15:00:00Z", True)),
        ("2020-01-01T10:00:00.123-05:00", ("2020-01-01T15:00:00.123Z", True)),
        ("2020-01-01T23:30:00-05:00", ("2020-01-02T04:30:00Z", True)),
        ("2020-01-01T10:00:00+05:30", ("2020-01-01T04:30:00Z", True)),
        ("2020-01-01T15:00:00+00:00", ("2020-01-01T15:00:00Z", True)),
        ("2020-01-01T15:00:00Z", ("2020-01-01T15:00:00Z", False)),
        ("2020-01-01T15:00:00", ("2020-01-01T15:00:00Z", True)),
        ("2020", ("2020", False)),
        ("2020-01", ("2020-01", False)),
        ("2020-01-02", ("2020-01-02", False)),
    ],
)
def test_datetime_to_utc(raw: str, expected: tuple[str, bool]) -> None:
    assert datetime_to_utc(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-01-01T10:00:00", ("2020-01-01T15:00:00Z", True)),
        ("2020-07-01T10:00:00", ("2020-07-01T14:00:00Z", True)),
        ("2020-07-01T10:00:00+02:00", ("2020-07-01T08:00:00Z", True)),
    ],
)
def test_datetime_to_utc_reads_naive_times_in_the_default_timezone(
    raw: str, expected: tuple[str, bool]
) -> None:
    assert datetime_to_utc(raw, default_timezone="America/New_York") == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("garbage", "datetime shaped 'AAAAAAA' is not a FHIR dateTime"),
        ("01/02/2020", "datetime shaped '99/99/9999' is not a FHIR dateTime"),
        ("", "datetime shaped '' is not a FHIR dateTime"),
        ("2020-13", "month must be in 1..12"),
        ("2020-02-30", "day is out of range for month"),
        ("2020-01-01T25:00:00Z", "hour must be in 0..23"),
    ],
)
def test_datetime_to_utc_refuses_garbage(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        datetime_to_utc(raw)


def synthea_patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "synthetic-1",
        "name": [{"use": "official", "family": "Schmidt639", "given": ["Jacinto644"], "prefix": ["Mr."]}],
        "telecom": [
            {"system": "phone", "value": "(617) 555-0134", "use": "home"},
            {"system": "phone", "value": "555-555-5555", "use": "mobile"},
            {"system": "email", "value": "Jacinto@Example.ORG"},
            {"system": "phone", "value": "ask the front desk"},
            {"system": "url", "value": "https://example.org/Jacinto"},
        ],
        "gender": "M",
        "birthDate": "1980-07-04",
        "address": [
            {
                "line": ["208 Farrell Way"],
                "city": "Boston",
                "state": "Massachusetts",
                "postalCode": "02108",
                "country": "US",
            }
        ],
    }


def test_patient_resource_normalize_keeps_originals_of_changed_values() -> None:
    result = patient_resource_normalize(synthea_patient())

    assert result == {
        "resourceType": "Patient",
        "id": "synthetic-1",
        "name": [
            {
                "use": "official",
                "family": "Schmidt",
                "_family": original("Schmidt639"),
                "given": ["Jacinto"],
                "_given": [original("Jacinto644")],
                "prefix": ["Mr"],
                "_prefix": [original("Mr.")],
            }
        ],
        "telecom": [
            {"system": "phone", "value": "+16175550134", "_value": original("(617) 555-0134"), "use": "home"},
            {"system": "phone", "value": "+15555555555", "_value": original("555-555-5555"), "use": "mobile"},
            {"system": "email", "value": "jacinto@example.org", "_value": original("Jacinto@Example.ORG")},
            {"system": "phone", "value": "ask the front desk"},
            {"system": "url", "value": "https://example.org/Jacinto"},
        ],
        "gender": "male",
        "_gender": original("M"),
        "birthDate": "1980-07-04",
        "address": [
            {
                "line": ["208 Farrell Way"],
                "city": "Boston",
                "state": "MA",
                "_state": original("Massachusetts"),
                "postalCode": "02108",
                "country": "US",
            }
        ],
    }
    assert json.loads(Patient.model_validate(result).model_dump_json()) == result


def test_patient_resource_normalize_does_not_mutate_its_input() -> None:
    resource = synthea_patient()
    before = copy.deepcopy(resource)

    patient_resource_normalize(resource)

    assert resource == before


def test_patient_resource_normalize_is_idempotent() -> None:
    once = patient_resource_normalize(synthea_patient())

    assert patient_resource_normalize(once) == once


def test_patient_resource_normalize_moves_a_suffix_and_merges_existing_extensions() -> None:
    source_extension = {"url": "https://ehr.example.org/fhir/source", "valueString": "registration"}
    resource = {
        "resourceType": "Patient",
        "name": [
            {
                "family": "SMITH JR.",
                "_family": {"extension": [source_extension]},
                "given": ["John", "paul"],
                "_given": [{"extension": [source_extension]}, None],
            }
        ],
        "address": [
            {"line": ["1 main street", "apartment 2"], "city": "BOSTON", "state": "ma", "postalCode": "2108"}
        ],
    }

    result = patient_resource_normalize(resource)

    assert result["name"] == [
        {
            "family": "Smith",
            "_family": {"extension": [source_extension, *original("SMITH JR.")["extension"]]},
            "given": ["John", "Paul"],
            "_given": [{"extension": [source_extension]}, original("paul")],
            "suffix": ["Jr"],
        }
    ]
    assert result["address"] == [
        {
            "line": ["1 Main St", "Apt 2"],
            "_line": [original("1 main street"), original("apartment 2")],
            "city": "Boston",
            "_city": original("BOSTON"),
            "state": "MA",
            "_state": original("ma"),
            "postalCode": "02108",
            "_postalCode": original("2108"),
        }
    ]
    assert json.loads(Patient.model_validate(result).model_dump_json()) == result


def test_patient_resource_normalize_changes_nothing_already_normal() -> None:
    resource = {
        "resourceType": "Patient",
        "name": [{"family": "McDonald", "given": ["Ana"]}],
        "telecom": [{"system": "phone", "value": "+16175550134"}],
        "gender": "female",
        "address": [
            {"line": ["1 Main St"], "city": "Boston", "state": "MA", "postalCode": "02108", "country": "US"}
        ],
    }

    assert patient_resource_normalize(resource) == resource


def test_patient_resource_normalize_converts_deceased_datetime_to_utc() -> None:
    resource = {
        "resourceType": "Patient",
        "deceasedDateTime": "2021-03-04T05:06:07",
        "birthDate": "1940-01-02",
    }

    result = patient_resource_normalize(resource, default_timezone="America/Chicago")

    assert result == {
        "resourceType": "Patient",
        "deceasedDateTime": "2021-03-04T11:06:07Z",
        "_deceasedDateTime": original("2021-03-04T05:06:07"),
        "birthDate": "1940-01-02",
    }
    assert json.loads(Patient.model_validate(result).model_dump_json()) == result


def test_resource_datetimes_normalize_observation() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "effectiveDateTime": "2020-01-01T10:00:00-05:00",
        "issued": "2020-01-01T15:30:00.250+00:00",
        "valueQuantity": {"value": 72, "unit": "/min"},
        "note": [{"text": "2020-01-01T10:00:00-05:00"}],
    }

    result = resource_datetimes_normalize(observation)

    assert result == {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "effectiveDateTime": "2020-01-01T15:00:00Z",
        "_effectiveDateTime": original("2020-01-01T10:00:00-05:00"),
        "issued": "2020-01-01T15:30:00.250Z",
        "_issued": original("2020-01-01T15:30:00.250+00:00"),
        "valueQuantity": {"value": 72, "unit": "/min"},
        "note": [{"text": "2020-01-01T10:00:00-05:00"}],
    }
    assert observation["effectiveDateTime"] == "2020-01-01T10:00:00-05:00"
    # fhir.resources writes instants back with microseconds; everything else, extensions included, survives.
    reparsed = json.loads(Observation.model_validate(result).model_dump_json())
    assert reparsed == {**result, "issued": "2020-01-01T15:30:00.250000Z"}


def test_resource_datetimes_normalize_encounter_period_in_default_timezone() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": "2020-07-01T09:00:00", "end": "2020-07-01"},
    }

    result = resource_datetimes_normalize(encounter, default_timezone="America/New_York")

    assert result["period"] == {
        "start": "2020-07-01T13:00:00Z",
        "_start": original("2020-07-01T09:00:00"),
        "end": "2020-07-01",
    }
    assert json.loads(Encounter.model_validate(result).model_dump_json()) == result


def test_resource_datetimes_normalize_leaves_unreadable_values() -> None:
    resource = {"resourceType": "Condition", "recordedDate": "last spring", "onsetDateTime": "2019"}

    assert resource_datetimes_normalize(resource) == resource


@given(st.text(alphabet="0123456789 +-().x", max_size=24))
def test_phone_to_e164_is_idempotent_on_its_output(raw: str) -> None:
    result = phone_to_e164(raw)

    if result is not None:
        assert phone_to_e164(result) == result


@given(st.one_of(st.none(), st.text(max_size=12)))
def test_administrative_sex_normalize_always_answers_a_fhir_code(raw: str | None) -> None:
    assert administrative_sex_normalize(raw) in ADMINISTRATIVE_GENDERS


@given(st.text(max_size=30))
def test_name_part_normalize_is_idempotent(raw: str) -> None:
    once = name_part_normalize(raw)

    assert name_part_normalize(once) == once


ADDRESS_WORDS = st.one_of(
    st.sampled_from(sorted({*STREET_SUFFIXES, *UNIT_DESIGNATORS, *DIRECTIONALS, "#4", "12", "4b", "main"})),
    st.text(alphabet="abcXYZ019.,#-' ", min_size=1, max_size=8),
)


@given(
    lines=st.lists(st.lists(ADDRESS_WORDS, max_size=6).map(" ".join), max_size=3),
    city=st.text(max_size=12),
    state=st.one_of(st.none(), st.sampled_from(sorted(US_STATES)), st.text(max_size=4)),
    postal_code=st.text(alphabet="0123456789- A", max_size=11),
    country=st.sampled_from([None, "", "US", "usa", "United States", "GB"]),
)
def test_address_normalize_is_idempotent(
    lines: list[str], city: str, state: str | None, postal_code: str, country: str | None
) -> None:
    once = address_normalize(lines=lines, city=city, state=state, postal_code=postal_code, country=country)

    twice = address_normalize(
        lines=list(once.lines),
        city=once.city,
        state=once.state,
        postal_code=once.postal_code,
        country=once.country,
    )

    assert twice == once
