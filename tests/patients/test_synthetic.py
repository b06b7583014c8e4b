"""The synthetic data generator: population, disagreements, ground truth, files, Synthea clones, command."""

import copy
import csv
import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from fhir.resources.R4B.bundle import Bundle

from patients.synthetic import (
    CLINIC_EHR,
    CRM,
    CRM_COLUMNS,
    HOSPITAL_EHR,
    MRN_SYSTEMS,
    Disagreement,
    HardNegative,
    Person,
    Population,
    SourceRecord,
    clone_synthea_bundle,
    generate_population,
    iter_synthea_clones,
    read_truth,
    write_population,
)
from patients.synthetic.csv_export import CRM_BIRTH_DATE_FORMAT
from patients.synthetic.disagreements import RECORD_RATES, apply_record_damage, transposed_digits
from patients.synthetic.names import nicknames_for, one_character_typo, without_diacritics
from patients.synthetic.people import (
    LANGUAGE_BY_CODE,
    REFERENCE_DATE,
    HardNegativeCounts,
    PersonMaker,
    age_in_years,
    hard_negative_counts,
)
from patients.synthetic.records import SOURCE_PHONE_STYLE, SOURCES, RecordView, phone_format

JSON = dict[str, Any]

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SYNTHEA_DIR = SHARED_DATA / "synthea-r4"

EXPECTED_MAPPING = {
    "format": "concord.csv-mapping/1",
    "resource": "Patient",
    "delimiter": ",",
    "encoding": "utf-8",
    "fields": {
        "source_record_id": "CustomerID",
        "given": "FirstName",
        "middle": "MiddleName",
        "family": "LastName",
        "birth_date": {"column": "DOB", "format": "%m/%d/%Y"},
        "sex": "Gender",
        "email": "Email",
        "address_lines": ["Address1", "Address2"],
        "city": "City",
        "state": "State",
        "postal_code": "Zip",
        "preferred_language": "Language",
    },
    "phones": [{"column": "MobilePhone", "use": "mobile"}, {"column": "HomePhone", "use": "home"}],
    "identifiers": [{"column": "HospitalMRN", "system": "urn:oid:2.16.840.1.113883.3.1001.1", "type": "MR"}],
}


@pytest.fixture(scope="module")
def population() -> Population:
    # 400 rather than 200 so that even the rarest kind (swapped day/month) shows up on its own.
    return generate_population(people=400, seed=0)


@pytest.fixture(scope="module")
def people_by_id(population: Population) -> dict[str, Person]:
    return {person.person_id: person for person in population.people}


@pytest.fixture
def synthea_dir() -> Path:
    if not SYNTHEA_DIR.is_dir():
        pytest.skip(f"shared Synthea data is absent ({SYNTHEA_DIR}); CI always has it")
    return SYNTHEA_DIR


# --- helpers ---------------------------------------------------------------------------------


def _digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _demographics(record: SourceRecord) -> JSON:
    """The demographics of a record, in one shape whatever the source."""
    if record.source == CRM:
        row = record.payload
        # The CRM has no suffix column: a kept "Jr" follows the last name.
        family, _, last_word = row["LastName"].rpartition(" ")
        if not (family and last_word.lower() == "jr"):
            family, last_word = row["LastName"], ""
        return {
            "given": row["FirstName"],
            "middle": row["MiddleName"],
            "family": family,
            "suffix": last_word,
            "birth_date": datetime.strptime(row["DOB"], CRM_BIRTH_DATE_FORMAT).date(),  # noqa: DTZ007 - a date, no zone
            "sex": {"F": "female", "M": "male", "U": "unknown"}[row["Gender"]],
            "phones": {"mobile": row["MobilePhone"], "home": row["HomePhone"]},
            "email": row["Email"],
            "address_lines": [line for line in (row["Address1"], row["Address2"]) if line],
            "postal_code": row["Zip"],
            "language": row["Language"],
        }
    patient = _patient(record.payload)
    name = patient["name"][0]
    phones = {"mobile": "", "home": ""}
    email = ""
    for contact_point in patient.get("telecom", []):
        if contact_point["system"] == "phone":
            phones[contact_point["use"]] = contact_point["value"]
        else:
            email = contact_point["value"]
    return {
        "given": name["given"][0],
        "middle": name["given"][1] if len(name["given"]) > 1 else "",
        "family": name["family"],
        "suffix": name.get("suffix", [""])[0],
        "birth_date": date.fromisoformat(patient["birthDate"]),
        "sex": patient["gender"],
        "phones": phones,
        "email": email,
        "address_lines": patient["address"][0]["line"],
        "postal_code": patient["address"][0]["postalCode"],
        "language": patient["communication"][0]["language"]["coding"][0]["code"],
    }


def _truth_demographics(person: Person) -> JSON:
    return {
        "given": person.given,
        "middle": person.middle,
        "family": person.family,
        "suffix": person.suffix,
        "birth_date": person.birth_date,
        "sex": person.sex,
        "phone_digits": {"mobile": person.mobile_phone, "home": person.home_phone},
        "email": person.email,
        "address_lines": person.address.lines,
        "postal_code": person.address.postal_code,
        "language": person.preferred_language,
    }


def _comparable(demographics: JSON) -> JSON:
    result = dict(demographics)
    result["phone_digits"] = {use: _digits(value) for use, value in result.pop("phones").items()}
    return result


def _patient(bundle: JSON) -> JSON:
    (patient,) = [
        entry["resource"] for entry in bundle["entry"] if entry["resource"]["resourceType"] == "Patient"
    ]
    return patient


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _resource_ids(bundle: JSON) -> set[str]:
    return {entry["resource"]["id"] for entry in bundle["entry"]}


def _full_urls(bundle: JSON) -> set[str]:
    return {entry["fullUrl"] for entry in bundle["entry"]}


def _type_counts(bundle: JSON) -> Counter[str]:
    return Counter(entry["resource"]["resourceType"] for entry in bundle["entry"])


def _unresolved_uuid_references(bundle: JSON) -> list[str]:
    full_urls = _full_urls(bundle)
    return [
        reference
        for reference in _references(bundle)
        if reference.startswith("urn:uuid:") and reference not in full_urls
    ]


def _is_one_edit(first: str, second: str) -> bool:
    """Optimal string alignment distance of exactly one (substitution, insertion, deletion, transposition)."""
    if first == second or abs(len(first) - len(second)) > 1:
        return False
    if len(first) == len(second):
        differences = [position for position in range(len(first)) if first[position] != second[position]]
        if len(differences) == 1:
            return True
        return (
            len(differences) == 2
            and differences[1] == differences[0] + 1
            and first[differences[0]] == second[differences[1]]
            and first[differences[1]] == second[differences[0]]
        )
    shorter, longer = sorted((first, second), key=len)
    return any(longer[:position] + longer[position + 1 :] == shorter for position in range(len(longer)))


def _is_one_adjacent_digit_swap(first: date, second: date) -> bool:
    """The two dates' ISO forms differ by exactly one swap of two adjacent, different digits."""
    first_text, second_text = first.isoformat(), second.isoformat()
    differences = [
        position for position in range(len(first_text)) if first_text[position] != second_text[position]
    ]
    if len(differences) != 2 or differences[1] != differences[0] + 1:
        return False
    left, right = differences
    return (
        first_text[left] == second_text[right]
        and first_text[right] == second_text[left]
        and (first_text[left] + first_text[right]).isdigit()
    )


def _pairs_of(population: Population, kind: str) -> list[HardNegative]:
    return [pair for pair in population.hard_negatives if pair.kind == kind]


def _groups(pairs: list[HardNegative]) -> list[set[str]]:
    """The people the pairs connect, one set per connected group (a household, a cluster)."""
    groups: list[set[str]] = []
    for pair in pairs:
        touching = [group for group in groups if group & set(pair.person_ids)]
        merged = set(pair.person_ids).union(*touching)
        groups = [group for group in groups if group not in touching] + [merged]
    return groups


def _records_by_person(population: Population) -> dict[str, list[tuple[SourceRecord, tuple[str, ...]]]]:
    """Each person's records, with the disagreements truth tags them with."""
    truth_by_key = {(row.source, row.source_record_id): row for row in population.truth}
    records: dict[str, list[tuple[SourceRecord, tuple[str, ...]]]] = {}
    for record in population.records:
        row = truth_by_key[(record.source, record.source_record_id)]
        records.setdefault(row.person_id, []).append((record, row.disagreements))
    return records


# --- population ------------------------------------------------------------------------------


def test_same_seed_gives_the_same_population() -> None:
    first = generate_population(people=40, seed=11)
    second = generate_population(people=40, seed=11)

    assert first == second


def test_another_seed_gives_another_population() -> None:
    first = generate_population(people=40, seed=11)
    second = generate_population(people=40, seed=12)

    assert [person.given for person in first.people] != [person.given for person in second.people]
    assert {row.source_record_id for row in first.truth}.isdisjoint(
        {row.source_record_id for row in second.truth}
    )


def test_no_people_gives_an_empty_population() -> None:
    empty = generate_population(people=0)

    assert (empty.people, empty.records, empty.truth, empty.hard_negatives) == ([], [], [], [])


def test_negative_people_is_refused() -> None:
    with pytest.raises(ValueError, match="people must be zero or more"):
        generate_population(people=-1)


def test_every_person_is_in_the_hospital_and_most_in_the_clinic_and_crm(population: Population) -> None:
    per_source = Counter(record.source for record in population.records)

    assert len(population.people) == 400
    assert per_source[HOSPITAL_EHR] == 400
    # Binomial draws: 60% and 80% of 400, with generous bounds (about 4 standard deviations).
    assert 200 <= per_source[CLINIC_EHR] <= 280
    assert 290 <= per_source[CRM] <= 350


def test_person_ids_and_record_ids_are_unique(population: Population) -> None:
    person_ids = [person.person_id for person in population.people]
    record_keys = [(record.source, record.source_record_id) for record in population.records]

    assert len(set(person_ids)) == len(person_ids)
    assert len(set(record_keys)) == len(record_keys)


def test_truth_maps_every_record_to_exactly_one_known_person(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    truth_keys = [(row.source, row.source_record_id) for row in population.truth]
    record_keys = [(record.source, record.source_record_id) for record in population.records]
    hospital_people = {row.person_id for row in population.truth if row.source == HOSPITAL_EHR}

    assert sorted(truth_keys) == sorted(record_keys)
    assert len(set(truth_keys)) == len(truth_keys)
    assert {row.person_id for row in population.truth} == set(people_by_id)
    assert hospital_people == set(people_by_id)


def test_preferred_languages_are_weighted_to_english(population: Population) -> None:
    languages = Counter(person.preferred_language for person in population.people)

    assert set(languages) <= set(LANGUAGE_BY_CODE)
    assert languages.most_common(1)[0][0] == "en"
    assert languages["en"] >= 240
    assert languages["es"] >= 30


def test_every_disagreement_kind_occurs(population: Population) -> None:
    kinds = Counter(kind for row in population.truth for kind in row.disagreements)

    assert set(kinds) == {str(kind) for kind in Disagreement}


def test_records_without_disagreements_carry_exactly_the_truth(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    truth_by_key = {(row.source, row.source_record_id): row for row in population.truth}
    checked = 0
    for record in population.records:
        row = truth_by_key[(record.source, record.source_record_id)]
        if row.disagreements:
            continue
        assert _comparable(_demographics(record)) == _truth_demographics(people_by_id[row.person_id])
        checked += 1

    assert checked >= 300


def test_each_disagreement_changes_what_it_says(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    """Records with exactly one disagreement differ from the truth in exactly that way."""
    truth_by_key = {(row.source, row.source_record_id): row for row in population.truth}
    seen: Counter[str] = Counter()
    for record in population.records:
        row = truth_by_key[(record.source, record.source_record_id)]
        if len(row.disagreements) != 1:
            continue
        (kind,) = row.disagreements
        person = people_by_id[row.person_id]
        found = _demographics(record)
        expected = _truth_demographics(person)
        actual = _comparable(found)
        changed = {key for key in expected if actual[key] != expected[key]}
        seen[kind] += 1
        if kind == Disagreement.NEW_PHONE:
            assert (record.source, changed) == (CRM, {"phone_digits"})
            assert actual["phone_digits"]["mobile"] == person.new_mobile_phone
            assert person.new_mobile_phone != person.mobile_phone
        elif kind == Disagreement.MOVED_ADDRESS:
            assert person.new_address is not None
            assert (record.source, changed <= {"address_lines", "postal_code"}) == (CRM, True)
            assert (actual["address_lines"], actual["postal_code"]) == (
                person.new_address.lines,
                person.new_address.postal_code,
            )
        elif kind == Disagreement.MARRIED_NAME:
            assert (changed, person.sex) == ({"family"}, "female")
            assert actual["family"] == person.married_family
        elif kind == Disagreement.NICKNAME:
            assert changed == {"given"}
            assert actual["given"] in nicknames_for(person.given)
        elif kind == Disagreement.SWAPPED_DAY_MONTH:
            assert changed == {"birth_date"}
            birth_date = person.birth_date
            assert actual["birth_date"] == date(birth_date.year, birth_date.day, birth_date.month)
        elif kind == Disagreement.TRANSPOSED_BIRTH_DATE_DIGITS:
            assert changed == {"birth_date"}
            assert _is_one_adjacent_digit_swap(actual["birth_date"], person.birth_date)
        elif kind == Disagreement.TYPO:
            assert len(changed) == 1
            assert changed <= {"given", "family"}
            (field,) = changed
            assert _is_one_edit(actual[field], expected[field])
        elif kind == Disagreement.MISSING_EMAIL:
            assert (changed, actual["email"]) == ({"email"}, "")
        elif kind == Disagreement.MISSING_PHONE:
            assert (changed, actual["phone_digits"]) == ({"phone_digits"}, {"mobile": "", "home": ""})
        elif kind == Disagreement.MISSING_MIDDLE_NAME:
            assert (changed, actual["middle"]) == ({"middle"}, "")
        elif kind == Disagreement.MISSING_SUFFIX:
            assert (changed, actual["suffix"], person.suffix) == ({"suffix"}, "", "Jr")
        elif kind == Disagreement.MISSING_SEX:
            assert (changed, actual["sex"]) == ({"sex"}, "unknown")
        elif kind == Disagreement.DIACRITICS_REMOVED:
            assert changed
            assert changed <= {"given", "middle", "family"}
            for field in changed:
                assert actual[field] == without_diacritics(expected[field])
        elif kind == Disagreement.UPPER_CASE_NAME:
            assert changed
            assert changed <= {"given", "middle", "family", "suffix"}
            for field in ("given", "middle", "family", "suffix"):
                assert actual[field] == expected[field].upper()
        elif kind == Disagreement.PHONE_FORMAT:
            assert changed == set()
            usual_style = SOURCE_PHONE_STYLE[record.source]
            for value in found["phones"].values():
                if value:
                    assert value != phone_format(_digits(value), style=usual_style)
        else:
            pytest.fail(f"unexpected disagreement kind {kind}")

    assert set(seen) == {str(kind) for kind in Disagreement}


def test_married_names_are_in_the_newest_source_only(population: Population) -> None:
    sources_by_person: dict[str, list[str]] = {}
    for row in population.truth:
        sources_by_person.setdefault(row.person_id, []).append(row.source)
    married = [row for row in population.truth if Disagreement.MARRIED_NAME in row.disagreements]

    assert married
    for row in married:
        newest = max(sources_by_person[row.person_id], key=SOURCES.index)
        assert row.source == newest


def test_twins_share_family_name_birth_date_and_address_but_not_given_name(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    twins = [pair for pair in population.hard_negatives if pair.kind == "twins"]

    assert len(twins) == 8
    for pair in twins:
        first, second = (people_by_id[person_id] for person_id in pair.person_ids)
        assert (first.family, first.birth_date, first.address) == (
            second.family,
            second.birth_date,
            second.address,
        )
        assert first.given != second.given
        assert second.given not in nicknames_for(first.given)
        assert first.given not in nicknames_for(second.given)


def test_common_name_pairs_share_the_name_but_not_the_birth_date(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    pairs = [pair for pair in population.hard_negatives if pair.kind == "common_name"]

    assert len(pairs) == 8
    for pair in pairs:
        first, second = (people_by_id[person_id] for person_id in pair.person_ids)
        assert (first.given, first.family) == (second.given, second.family)
        assert abs((first.birth_date - second.birth_date).days) >= 365


def test_hard_negative_counts_are_a_few_percent_of_people_each() -> None:
    assert hard_negative_counts(people=7) == HardNegativeCounts(
        twins=0, common_name=0, junior_senior=0, shared_phone=0, same_name=0
    )
    assert hard_negative_counts(people=49) == HardNegativeCounts(
        twins=1, common_name=1, junior_senior=0, shared_phone=0, same_name=0
    )
    assert hard_negative_counts(people=50) == HardNegativeCounts(
        twins=1, common_name=1, junior_senior=1, shared_phone=1, same_name=3
    )
    assert hard_negative_counts(people=400) == HardNegativeCounts(
        twins=8, common_name=8, junior_senior=4, shared_phone=2, same_name=3
    )
    assert hard_negative_counts(people=10_000) == HardNegativeCounts(
        twins=200, common_name=200, junior_senior=100, shared_phone=66, same_name=20
    )


@pytest.mark.parametrize("people", [7, 8, 49, 50, 51, 149, 150, 151])
def test_a_population_has_exactly_the_people_asked_for_and_hard_negatives_among_them(people: int) -> None:
    population = generate_population(people=people, seed=4)
    person_ids = {person.person_id for person in population.people}

    assert len(population.people) == len(person_ids) == people
    for pair in population.hard_negatives:
        assert set(pair.person_ids) <= person_ids
        assert pair.person_ids[0] != pair.person_ids[1]


def test_hard_negatives_of_seed_0(population: Population) -> None:
    kinds = Counter(pair.kind for pair in population.hard_negatives)
    pairs = [frozenset(pair.person_ids) for pair in population.hard_negatives]

    # Both seed-0 households have two members, so one pair each; three Maria Garcias make three pairs.
    assert kinds == {"twins": 8, "common_name": 8, "junior_senior": 4, "shared_phone": 2, "same_name": 3}
    assert len(set(pairs)) == len(pairs)


def test_same_seed_gives_the_same_hard_negatives_and_another_seed_other_ones() -> None:
    first = generate_population(people=200, seed=11)
    second = generate_population(people=200, seed=11)
    other = generate_population(people=200, seed=12)

    def look_alikes(population: Population) -> list[tuple[str, tuple[Person, ...]]]:
        people_by_id = {person.person_id: person for person in population.people}
        return [
            (pair.kind, tuple(people_by_id[person_id] for person_id in pair.person_ids))
            for pair in population.hard_negatives
        ]

    assert first == second
    assert {pair.kind for pair in first.hard_negatives} == {
        "twins",
        "common_name",
        "junior_senior",
        "shared_phone",
        "same_name",
    }
    assert [people for kind, people in look_alikes(first) if kind == "junior_senior"] != [
        people for kind, people in look_alikes(other) if kind == "junior_senior"
    ]


def test_junior_and_senior_share_name_address_and_home_phone_but_are_20_to_40_years_apart(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    pairs = _pairs_of(population, "junior_senior")

    assert len(pairs) == 4
    for pair in pairs:
        senior, junior = (people_by_id[person_id] for person_id in pair.person_ids)
        assert (junior.given, junior.family, junior.sex, junior.address, junior.home_phone) == (
            senior.given,
            senior.family,
            senior.sex,
            senior.address,
            senior.home_phone,
        )
        assert junior.home_phone
        assert (senior.suffix, junior.suffix) == ("", "Jr")
        assert 20 * 365 <= (junior.birth_date - senior.birth_date).days < 40 * 365
        assert junior.birth_date <= REFERENCE_DATE
        # Only the home phone is shared: a mobile phone is its owner's alone.
        assert not junior.mobile_phone or junior.mobile_phone != senior.mobile_phone


def test_juniors_drawn_many_times_are_mostly_sons_mostly_with_their_fathers_middle_name() -> None:
    maker = PersonMaker(seed=1)

    pairs = [maker.junior_senior_pair() for _ in range(200)]

    sons = sum(junior.sex == "male" for _senior, junior in pairs)
    same_middle = sum(junior.middle == senior.middle for senior, junior in pairs)
    assert 160 <= sons < 200
    assert 120 <= same_middle < 200
    assert {senior.preferred_language for senior, _junior in pairs} == {"en", "es"}
    for senior, junior in pairs:
        assert (senior.given, senior.family, senior.address, senior.home_phone, junior.suffix) == (
            junior.given,
            junior.family,
            junior.address,
            junior.home_phone,
            "Jr",
        )
        assert age_in_years(senior.birth_date) - age_in_years(junior.birth_date) >= 19


def test_junior_records_carry_the_suffix_unless_tagged_as_missing_it_and_seniors_never(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    records_by_person = _records_by_person(population)
    carried = dropped = 0
    for pair in _pairs_of(population, "junior_senior"):
        senior_id, junior_id = pair.person_ids
        for record, _disagreements in records_by_person[senior_id]:
            assert _demographics(record)["suffix"] == ""
        for record, disagreements in records_by_person[junior_id]:
            suffix = _demographics(record)["suffix"]
            if Disagreement.MISSING_SUFFIX in disagreements:
                assert suffix == ""
                dropped += 1
            else:
                assert suffix in {"Jr", "JR"}
                carried += 1
            if record.source == CRM and suffix:
                assert record.payload["LastName"] == f"{_demographics(record)['family']} {suffix}"
            elif suffix:
                assert _patient(record.payload)["name"][0]["suffix"] == [suffix]

    assert (carried, dropped) == (5, 6)


def test_most_junior_records_keep_the_suffix_at_the_source_rates() -> None:
    randomness = random.Random(5)
    transposition_randomness = random.Random(6)
    junior = PersonMaker(seed=5).junior_senior_pair()[1]
    for source in SOURCES:
        kept = 0
        for number in range(2000):
            view = RecordView.of(junior, source=source, source_record_id=str(number))
            apply_record_damage(
                view, randomness=randomness, transposition_randomness=transposition_randomness
            )
            kept += view.suffix.lower() == "jr"

        rate = RECORD_RATES[Disagreement.MISSING_SUFFIX][source]
        # Binomial, 2000 draws: within about 4 standard deviations of the rate; more than half kept.
        assert abs((2000 - kept) / 2000 - rate) < 0.045
        assert kept > 1000


def test_households_share_address_and_home_phone_but_not_given_name_or_birth_date(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    pairs = _pairs_of(population, "shared_phone")
    households = _groups(pairs)

    assert len(households) == 2
    for household in households:
        members = [people_by_id[person_id] for person_id in sorted(household)]
        assert 2 <= len(members) <= 4
        # Every two members are a pair, each listed once.
        assert sorted(
            frozenset(pair.person_ids) for pair in pairs if set(pair.person_ids) <= household
        ) == sorted(frozenset(two) for two in itertools.combinations(household, 2))
        assert len({(member.address, member.home_phone) for member in members}) == 1
        assert members[0].home_phone
        assert len({member.given for member in members}) == len(members)
        assert len({member.birth_date for member in members}) == len(members)


def test_household_records_really_carry_the_shared_home_phone(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    records_by_person = _records_by_person(population)
    checked = 0
    for household in _groups(_pairs_of(population, "shared_phone")):
        (phone,) = {people_by_id[person_id].home_phone for person_id in household}
        for person_id in household:
            for record, disagreements in records_by_person[person_id]:
                if Disagreement.MISSING_PHONE in disagreements:
                    continue
                assert _comparable(_demographics(record))["phone_digits"]["home"] == phone
                checked += 1

    assert checked >= 4


def test_households_drawn_many_times_have_two_to_four_members_and_sometimes_one_email() -> None:
    maker = PersonMaker(seed=2)

    households = [maker.household() for _ in range(100)]

    assert {len(members) for members in households} == {2, 3, 4}
    shared_email = 0
    for members in households:
        assert len({member.home_phone for member in members}) == 1
        assert len({member.address for member in members}) == 1
        assert len({member.birth_date for member in members}) == len(members)
        for first, second in itertools.combinations(members, 2):
            assert first.given != second.given
            assert second.given not in nicknames_for(first.given)
            assert first.given not in nicknames_for(second.given)
        emails = [member.email for member in members]
        own_emails = [email for email in emails if email]
        # A family e-mail is everyone's; otherwise nobody shares one (some have none at all).
        if len(set(emails)) == 1:
            assert emails[0]
            shared_email += 1
        else:
            assert len(set(own_emails)) == len(own_emails)
        for member in members:
            if age_in_years(member.birth_date) < 12:
                assert member.mobile_phone == ""
        assert age_in_years(members[0].birth_date) >= 25
    same_family = sum(member.family == members[0].family for members in households for member in members[1:])
    others = sum(len(members) - 1 for members in households)
    assert 10 <= shared_email <= 50
    assert same_family > others / 2


def test_the_maria_garcias_are_different_people_all_paired(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    pairs = _pairs_of(population, "same_name")
    (cluster,) = _groups(pairs)
    marias = [people_by_id[person_id] for person_id in sorted(cluster)]

    assert len(marias) == 3
    assert len(pairs) == 3
    assert {(maria.given, maria.family, maria.sex) for maria in marias} == {("Maria", "Garcia", "female")}
    assert len({maria.birth_date for maria in marias}) == 3
    assert len({maria.address for maria in marias}) == 3


def test_a_large_same_name_cluster_has_no_shared_birth_date_or_address() -> None:
    marias = PersonMaker(seed=3).same_name_cluster(size=60)

    assert len(marias) == 60
    assert {(maria.given, maria.family) for maria in marias} == {("Maria", "Garcia")}
    assert len({maria.birth_date for maria in marias}) == 60
    assert len({maria.address for maria in marias}) == 60


@pytest.mark.parametrize(
    ("birth_date", "expected"),
    [
        # 9187 is in the future and 1897 before 1900; the month 30 does not exist.
        (date(1987, 3, 12), {date(1978, 3, 12), date(1987, 3, 21)}),
        (date(1990, 10, 30), {date(1909, 10, 30), date(1990, 1, 30), date(1990, 10, 3)}),
    ],
)
def test_transposed_digits_swap_two_adjacent_digits_within_year_month_or_day(
    birth_date: date, expected: set[date]
) -> None:
    randomness = random.Random(0)

    results = {transposed_digits(birth_date, randomness=randomness) for _ in range(100)}

    assert results == expected
    for result in expected:
        assert _is_one_adjacent_digit_swap(result, birth_date)


def test_transposed_digits_gives_none_when_no_swap_makes_a_plausible_date() -> None:
    # 0211 is before 1900, 2101 after the reference date; the other neighbours are equal digits.
    assert transposed_digits(date(2011, 11, 11), randomness=random.Random(0)) is None


def test_transposed_birth_dates_differ_from_the_truth_by_one_adjacent_swap(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    transposed = 0
    for person_id, records in _records_by_person(population).items():
        truth = people_by_id[person_id].birth_date
        for record, disagreements in records:
            if Disagreement.TRANSPOSED_BIRTH_DATE_DIGITS not in disagreements:
                continue
            # A swapped day and month (a person event) comes first; the transposition acts on it.
            expected = truth
            if Disagreement.SWAPPED_DAY_MONTH in disagreements:
                expected = date(truth.year, truth.day, truth.month)
            recorded = _demographics(record)["birth_date"]
            assert _is_one_adjacent_digit_swap(recorded, expected)
            assert recorded <= REFERENCE_DATE
            assert recorded - expected != timedelta(0)
            transposed += 1

    assert transposed == 6


def test_one_character_typo_is_one_edit_and_keeps_the_first_letter() -> None:
    randomness = random.Random(3)
    for name in ("Margaret", "Li", "Nguyễn", "O'Brien", "Smith"):
        for _ in range(50):
            damaged = one_character_typo(name, randomness=randomness)
            assert _is_one_edit(damaged, name), (name, damaged)
            assert damaged[0] == name[0]


def test_without_diacritics_gives_ascii_for_spanish_and_vietnamese() -> None:
    assert without_diacritics("José Nguyễn Đặng Gutiérrez") == "Jose Nguyen Dang Gutierrez"


# --- FHIR bundles ------------------------------------------------------------------------------


def test_generated_bundles_parse_with_fhir_r4b() -> None:
    small = generate_population(people=60, seed=5)
    bundles = [record.payload for record in small.records if record.source != CRM]

    assert len(bundles) >= 60
    for bundle in bundles:
        Bundle.model_validate(bundle)


def test_generated_bundles_are_transactions_whose_references_resolve(population: Population) -> None:
    for record in population.records:
        if record.source == CRM:
            continue
        bundle = record.payload
        assert bundle["type"] == "transaction"
        assert {entry["request"]["method"] for entry in bundle["entry"]} == {"POST"}
        assert all(entry["request"]["url"] == entry["resource"]["resourceType"] for entry in bundle["entry"])
        assert all(entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}" for entry in bundle["entry"])
        assert _unresolved_uuid_references(bundle) == []
        assert all(reference.startswith("urn:uuid:") for reference in _references(bundle))


def test_each_ehr_uses_its_own_medical_record_number_system(
    population: Population, people_by_id: dict[str, Person]
) -> None:
    truth_by_key = {(row.source, row.source_record_id): row for row in population.truth}
    for record in population.records:
        if record.source == CRM:
            continue
        patient = _patient(record.payload)
        person = people_by_id[truth_by_key[(record.source, record.source_record_id)].person_id]
        (identifier,) = patient["identifier"]
        assert patient["id"] == record.source_record_id
        assert identifier["system"] == MRN_SYSTEMS[record.source]
        assert identifier["value"] == person.medical_record_numbers[record.source]
        assert identifier["type"]["coding"][0]["code"] == "MR"


def test_generated_clinical_resources_are_coded_like_synthea(population: Population) -> None:
    bundle = population.records_of(HOSPITAL_EHR)[0].payload
    resources = [entry["resource"] for entry in bundle["entry"]]
    by_code = {}
    for resource in resources:
        if resource["resourceType"] == "Observation":
            by_code[resource["code"]["coding"][0]["code"]] = resource
    types = _type_counts(bundle)
    blood_pressure = by_code["85354-9"]
    components = {
        component["code"]["coding"][0]["code"]: component["valueQuantity"]["code"]
        for component in blood_pressure["component"]
    }
    (medication_request,) = [
        resource for resource in resources if resource["resourceType"] == "MedicationRequest"
    ]

    assert 1 <= types["Encounter"] <= 3
    assert (types["Observation"], types["Condition"], types["MedicationRequest"]) == (
        3 * types["Encounter"],
        1,
        1,
    )
    assert components == {"8480-6": "mm[Hg]", "8462-4": "mm[Hg]"}
    assert by_code["8867-4"]["valueQuantity"]["code"] == "/min"
    assert by_code["29463-7"]["valueQuantity"]["code"] == "kg"
    assert blood_pressure["category"][0]["coding"][0]["code"] == "vital-signs"
    coding = medication_request["medicationCodeableConcept"]["coding"][0]
    assert coding["system"] == "http://www.nlm.nih.gov/research/umls/rxnorm"
    assert coding["code"].isdigit()


def test_bundles_share_no_dicts_so_consumers_can_rewrite_them_in_place() -> None:
    small = generate_population(people=5, seed=1)
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            assert id(node) not in seen
            seen.add(id(node))
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)

    for record in small.records:
        walk(record.payload)


# --- CRM CSV -----------------------------------------------------------------------------------


def test_crm_rows_follow_the_mapping(population: Population, people_by_id: dict[str, Person]) -> None:
    truth_by_key = {(row.source, row.source_record_id): row for row in population.truth}
    rows = [record for record in population.records if record.source == CRM]
    known_hospital_numbers = 0
    for record in rows:
        row = record.payload
        person = people_by_id[truth_by_key[(CRM, record.source_record_id)].person_id]
        assert tuple(row) == CRM_COLUMNS
        assert row["CustomerID"] == record.source_record_id
        datetime.strptime(row["DOB"], CRM_BIRTH_DATE_FORMAT)  # noqa: DTZ007 - a date, no zone
        assert row["Gender"] in {"M", "F", "U"}
        assert row["Language"] in LANGUAGE_BY_CODE
        assert row["HospitalMRN"] in {"", person.medical_record_numbers[HOSPITAL_EHR]}
        known_hospital_numbers += bool(row["HospitalMRN"])

    assert 0 < known_hospital_numbers < len(rows)


# --- files -------------------------------------------------------------------------------------


def test_write_population_writes_every_source_the_mapping_and_the_truth(tmp_path: Path) -> None:
    small = generate_population(people=30, seed=2)
    per_source = Counter(record.source for record in small.records)

    counts = write_population(small, tmp_path)

    resources = sum(len(record.payload["entry"]) for record in small.records if record.source != CRM)
    assert counts == {
        "people": 30,
        HOSPITAL_EHR: 30,
        CLINIC_EHR: per_source[CLINIC_EHR],
        CRM: per_source[CRM],
        "resources": resources,
        "truth": len(small.records),
        "hard_negatives": 2,
    }
    for source in (HOSPITAL_EHR, CLINIC_EHR):
        files = sorted(path.name for path in (tmp_path / source).glob("*.json"))
        assert files == sorted(f"{record.source_record_id}.json" for record in small.records_of(source))
    first = small.records_of(HOSPITAL_EHR)[0]
    written = json.loads(
        (tmp_path / HOSPITAL_EHR / f"{first.source_record_id}.json").read_text(encoding="utf-8")
    )
    assert written == first.payload
    assert json.loads((tmp_path / CRM / "mapping.json").read_text(encoding="utf-8")) == EXPECTED_MAPPING
    with (tmp_path / CRM / "patients.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == CRM_COLUMNS
        assert list(reader) == [record.payload for record in small.records_of(CRM)]
    truth_header = (tmp_path / "truth.csv").read_text(encoding="utf-8").splitlines()[0]
    assert truth_header == "source,source_record_id,person_id,disagreements"
    assert read_truth(tmp_path / "truth.csv") == small.truth
    hard_negatives = (tmp_path / "hard_negatives.csv").read_text(encoding="utf-8").splitlines()
    assert hard_negatives[0] == "kind,person_id,other_person_id"
    assert len(hard_negatives) == 3


def test_write_population_removes_bundles_of_an_earlier_larger_run(tmp_path: Path) -> None:
    write_population(generate_population(people=20, seed=1), tmp_path)
    smaller = generate_population(people=10, seed=1)

    write_population(smaller, tmp_path)

    written = {path.stem for path in (tmp_path / HOSPITAL_EHR).glob("*.json")}
    assert written == {record.source_record_id for record in smaller.records_of(HOSPITAL_EHR)}


# --- Synthea cloning ---------------------------------------------------------------------------

PATIENT_ID = "11111111-1111-4111-8111-111111111111"
ORGANIZATION_ID = "22222222-2222-4222-8222-222222222222"
ENCOUNTER_ID = "33333333-3333-4333-8333-333333333333"
OBSERVATION_ID = "44444444-4444-4444-8444-444444444444"
SYNTHEA_IDENTIFIER = "55555555-5555-4555-8555-555555555555"
ORGANIZATION_CONDITIONAL = (
    "Organization?identifier=https://github.com/synthetichealth/synthea|66666666-6666-4666-8666-666666666666"
)
PRACTITIONER_CONDITIONAL = "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999939"


def _synthea_like_bundle() -> JSON:
    """A small Bundle with every kind of reference a Synthea bundle can hold."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{PATIENT_ID}",
                "resource": {
                    "resourceType": "Patient",
                    "id": PATIENT_ID,
                    "identifier": [
                        {"system": "https://github.com/synthetichealth/synthea", "value": SYNTHEA_IDENTIFIER},
                        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"},
                        {"system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "S99912345"},
                        {
                            "system": "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber",
                            "value": "X12345678X",
                        },
                    ],
                    "name": [{"use": "official", "family": "Koepp", "given": ["Abdul"], "prefix": ["Mr."]}],
                    "telecom": [{"system": "phone", "value": "555-978-4581", "use": "home"}],
                    "gender": "male",
                    "birthDate": "1956-08-03",
                    "address": [{"line": ["313 Lockman Row Suite 4"], "city": "Peabody", "state": "MA"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"urn:uuid:{ORGANIZATION_ID}",
                "resource": {
                    "resourceType": "Organization",
                    "id": ORGANIZATION_ID,
                    "identifier": [
                        {"system": "https://github.com/synthetichealth/synthea", "value": ORGANIZATION_ID}
                    ],
                    "name": "NORTH SHORE MEDICAL CENTER",
                },
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "fullUrl": f"urn:uuid:{ENCOUNTER_ID}",
                "resource": {
                    "resourceType": "Encounter",
                    "id": ENCOUNTER_ID,
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": f"urn:uuid:{PATIENT_ID}", "display": "Mr. Abdul Koepp"},
                    "participant": [{"individual": {"reference": PRACTITIONER_CONDITIONAL}}],
                    "serviceProvider": {"reference": f"urn:uuid:{ORGANIZATION_ID}"},
                    "location": [
                        {
                            "location": {
                                "reference": ORGANIZATION_CONDITIONAL.replace("Organization", "Location")
                            }
                        }
                    ],
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
            {
                "fullUrl": f"urn:uuid:{OBSERVATION_ID}",
                "resource": {
                    "resourceType": "Observation",
                    "id": OBSERVATION_ID,
                    "contained": [{"resourceType": "Practitioner", "id": "performer"}],
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{PATIENT_ID}"},
                    "encounter": {"reference": f"urn:uuid:{ENCOUNTER_ID}"},
                    "performer": [{"reference": "#performer"}, {"reference": ORGANIZATION_CONDITIONAL}],
                    "valueQuantity": {
                        "value": 72,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {"method": "PUT", "url": f"Observation/{OBSERVATION_ID}"},
            },
        ],
    }


def test_clone_gives_every_resource_a_new_id_and_follows_it_in_every_reference() -> None:
    bundle = _synthea_like_bundle()

    clone = clone_synthea_bundle(bundle, clone_index=0)

    assert _resource_ids(clone).isdisjoint(_resource_ids(bundle))
    assert _full_urls(clone).isdisjoint(_full_urls(bundle))
    assert [entry["fullUrl"] for entry in clone["entry"]] == [
        f"urn:uuid:{entry['resource']['id']}" for entry in clone["entry"]
    ]
    assert _unresolved_uuid_references(clone) == []
    new_patient_id = clone["entry"][0]["resource"]["id"]
    observation = clone["entry"][3]
    assert observation["resource"]["subject"] == {"reference": f"Patient/{new_patient_id}"}
    assert observation["request"] == {"method": "PUT", "url": f"Observation/{observation['resource']['id']}"}


def test_clone_leaves_conditional_and_contained_references_untouched() -> None:
    clone = clone_synthea_bundle(_synthea_like_bundle(), clone_index=4, seed=9)
    encounter = clone["entry"][2]["resource"]
    observation = clone["entry"][3]["resource"]

    assert encounter["participant"] == [{"individual": {"reference": PRACTITIONER_CONDITIONAL}}]
    assert encounter["location"][0]["location"]["reference"] == ORGANIZATION_CONDITIONAL.replace(
        "Organization", "Location"
    )
    assert observation["performer"] == [{"reference": "#performer"}, {"reference": ORGANIZATION_CONDITIONAL}]
    assert observation["contained"] == [{"resourceType": "Practitioner", "id": "performer"}]


def test_clone_gives_personal_identifiers_new_values_and_perturbs_demographics() -> None:
    bundle = _synthea_like_bundle()

    clone = clone_synthea_bundle(bundle, clone_index=1)

    original, cloned = bundle["entry"][0]["resource"], clone["entry"][0]["resource"]
    original_values = {identifier["value"] for identifier in original["identifier"]}
    cloned_values = [identifier["value"] for identifier in cloned["identifier"]]
    assert original_values.isdisjoint(cloned_values)
    assert re.fullmatch(r"999-\d\d-\d{4}", cloned_values[1])
    assert re.fullmatch(r"S999\d{5}", cloned_values[2])
    assert re.fullmatch(r"X\d{8}X", cloned_values[3])
    # The organization's identifier repeats its id in Synthea; it must keep doing so.
    organization = clone["entry"][1]["resource"]
    assert organization["identifier"][0]["value"] == organization["id"]
    assert cloned["name"][0]["given"][0] != "Abdul"
    assert (cloned["name"][0]["family"], cloned["name"][0]["prefix"]) == ("Koepp", ["Mr."])
    assert 1 <= (date(1956, 8, 3) - date.fromisoformat(cloned["birthDate"])).days <= 10
    assert cloned["address"][0]["line"] != ["313 Lockman Row Suite 4"]
    assert cloned["address"][0]["city"] == "Peabody"
    assert cloned["telecom"][0]["value"] != "555-978-4581"
    assert re.fullmatch(r"555-\d{3}-\d{4}", cloned["telecom"][0]["value"])
    display = clone["entry"][2]["resource"]["subject"]["display"]
    assert display == f"Mr. {cloned['name'][0]['given'][0]} Koepp"


def test_clone_gives_an_identifier_naming_a_resource_of_the_bundle_the_clones_id() -> None:
    claim_id, benefit_id = "77777777-7777-4777-8777-777777777777", "88888888-8888-4888-8888-888888888888"
    claim_id_system = "https://bluebutton.cms.gov/resources/variables/clm_id"
    group = {"system": "https://bluebutton.cms.gov/resources/identifier/claim-group", "value": "99999999999"}
    bundle = _synthea_like_bundle()
    bundle["entry"] += [
        {"fullUrl": f"urn:uuid:{claim_id}", "resource": {"resourceType": "Claim", "id": claim_id}},
        {
            "fullUrl": f"urn:uuid:{benefit_id}",
            "resource": {
                "resourceType": "ExplanationOfBenefit",
                "id": benefit_id,
                "identifier": [{"system": claim_id_system, "value": claim_id}, group],
                "claim": {"reference": f"urn:uuid:{claim_id}"},
            },
        },
    ]

    clones = [clone_synthea_bundle(bundle, clone_index=index) for index in range(2)]

    claim_numbers = []
    for clone in clones:
        claim, benefit = clone["entry"][-2]["resource"], clone["entry"][-1]["resource"]
        assert benefit["identifier"] == [{"system": claim_id_system, "value": claim["id"]}, group]
        assert benefit["claim"] == {"reference": f"urn:uuid:{claim['id']}"}
        claim_numbers.append(claim["id"])
    assert len({claim_id, *claim_numbers}) == 3  # each clone's claims are its own


def test_clone_does_not_modify_its_input() -> None:
    bundle = _synthea_like_bundle()
    before = copy.deepcopy(bundle)

    clone_synthea_bundle(bundle, clone_index=0)

    assert bundle == before


def test_clone_is_deterministic_and_depends_on_seed_and_clone_index() -> None:
    bundle = _synthea_like_bundle()

    first = clone_synthea_bundle(bundle, clone_index=2, seed=1)
    again = clone_synthea_bundle(bundle, clone_index=2, seed=1)
    other_index = clone_synthea_bundle(bundle, clone_index=3, seed=1)
    other_seed = clone_synthea_bundle(bundle, clone_index=2, seed=2)

    assert first == again
    assert _resource_ids(first).isdisjoint(_resource_ids(other_index))
    assert _resource_ids(first).isdisjoint(_resource_ids(other_seed))


def _write_bundle(path: Path, bundle: JSON) -> None:
    path.write_text(json.dumps(bundle), encoding="utf-8")


def test_iter_synthea_clones_yields_shared_bundles_once_first_then_copies_of_each_patient(
    tmp_path: Path,
) -> None:
    shared = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    _write_bundle(tmp_path / "hospitalInformation1559319163815.json", shared)
    _write_bundle(tmp_path / "practitionerInformation1559319163815.json", shared)
    _write_bundle(tmp_path / "Abdul_Koepp.json", _synthea_like_bundle())
    # Another patient: clone ids depend on the original ids only, so a copy of the same file would collide.
    _write_bundle(
        tmp_path / "Beatrice_Hagenes.json", clone_synthea_bundle(_synthea_like_bundle(), clone_index=99)
    )

    yielded = list(iter_synthea_clones(tmp_path, copies=3, seed=0))

    names = [name for name, _bundle in yielded]
    assert names[:2] == ["hospitalInformation1559319163815.json", "practitionerInformation1559319163815.json"]
    assert [bundle for _name, bundle in yielded[:2]] == [shared, shared]
    assert len(names) == 2 + 2 * 3
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"clone-00[0-2]-[0-9a-f-]{36}\.json", name) for name in names[2:])
    for name, bundle in yielded[2:]:
        assert name.endswith(f"{_patient(bundle)['id']}.json")
        assert _type_counts(bundle) == _type_counts(_synthea_like_bundle())


def test_clone_of_a_real_synthea_bundle_parses_and_keeps_its_shape(synthea_dir: Path) -> None:
    path = min(
        (
            path
            for path in synthea_dir.glob("*.json")
            if not path.name.startswith(("hospital", "practitioner"))
        ),
        key=lambda path: path.stat().st_size,
    )
    bundle = json.loads(path.read_bytes())

    clone = clone_synthea_bundle(bundle, clone_index=0, seed=0)

    Bundle.model_validate(clone)
    assert _type_counts(clone) == _type_counts(bundle)
    assert _resource_ids(clone).isdisjoint(_resource_ids(bundle))
    assert _full_urls(clone).isdisjoint(_full_urls(bundle))
    assert _unresolved_uuid_references(clone) == []
    original_patient, cloned_patient = _patient(bundle), _patient(clone)
    assert cloned_patient["name"][0]["given"][0] != original_patient["name"][0]["given"][0]
    assert cloned_patient["birthDate"] < original_patient["birthDate"]
    assert {identifier["value"] for identifier in cloned_patient["identifier"]}.isdisjoint(
        {identifier["value"] for identifier in original_patient["identifier"]}
    )


def test_clones_of_every_synthea_bundle_keep_counts_and_resolve_references(synthea_dir: Path) -> None:
    yielded = list(iter_synthea_clones(synthea_dir, copies=1, seed=0))
    originals = {
        path.name: json.loads(path.read_bytes())
        for path in synthea_dir.glob("*.json")
        if not path.name.startswith(("hospitalInformation", "practitionerInformation"))
    }

    clones = [bundle for name, bundle in yielded if name.startswith("clone-")]
    assert len(clones) == len(originals)
    assert sum(map(_type_counts, clones), Counter()) == sum(map(_type_counts, originals.values()), Counter())
    original_ids = set().union(*(_resource_ids(bundle) for bundle in originals.values()))
    for clone in clones:
        assert _unresolved_uuid_references(clone) == []
        assert _resource_ids(clone).isdisjoint(original_ids)


# --- management command ------------------------------------------------------------------------


def test_command_writes_a_population_and_prints_counts_but_no_names(tmp_path: Path) -> None:
    output = StringIO()

    call_command("generate_synthetic", people=25, seed=3, out=str(tmp_path), stdout=output)

    population = generate_population(people=25, seed=3)
    printed = output.getvalue()
    assert "people 25" in printed
    assert f"{HOSPITAL_EHR} 25" in printed
    for person in population.people:
        assert person.family not in printed
        assert person.given not in printed
    assert read_truth(tmp_path / "truth.csv") == population.truth


def test_command_writes_synthea_clones(tmp_path: Path) -> None:
    source = tmp_path / "synthea"
    source.mkdir()
    _write_bundle(source / "Abdul_Koepp.json", _synthea_like_bundle())
    _write_bundle(
        source / "hospitalInformation1.json", {"resourceType": "Bundle", "type": "batch", "entry": []}
    )
    output = StringIO()

    call_command(
        "generate_synthetic",
        synthea_clones=2,
        synthea_dir=str(source),
        out=str(tmp_path / "out"),
        stdout=output,
    )

    written = sorted(path.name for path in (tmp_path / "out" / "synthea-clones").glob("*.json"))
    assert len(written) == 3
    assert written[-1] == "hospitalInformation1.json"
    assert "shared_bundles 1, patient_bundles 2, resources 8" in output.getvalue()
    assert "Abdul" not in output.getvalue()


def test_command_refuses_to_run_with_nothing_to_do(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Nothing to do"):
        call_command("generate_synthetic", out=str(tmp_path))


def test_command_refuses_clones_without_a_synthea_folder(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="needs --synthea-dir"):
        call_command("generate_synthetic", synthea_clones=1, out=str(tmp_path))
