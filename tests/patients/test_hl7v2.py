"""HL7 v2 parsing, mapping to FHIR R4 and acknowledgements, on small synthetic messages (no database)."""

from typing import Any

import pytest

from patients.ingest.entries import ParsedPayload, PayloadRejected
from patients.ingest.hl7v2 import acknowledgement, hl7v2_bundle, hl7v2_payload_parse, message_header
from patients.ingest.hl7v2.parse import Separators, unescape


def no_lookup(resource_type: str, system: str, value: str) -> str | None:
    return None


def parse(text: str, *, separator: str = "\r") -> ParsedPayload:
    body = separator.join(line for line in text.strip().splitlines()).encode()
    return hl7v2_payload_parse(body, lookup=no_lookup)


def resources(parsed: ParsedPayload, resource_type: str) -> list[dict[str, Any]]:
    return [entry.resource for entry in parsed.entries if entry.resource_type == resource_type]


def rejected(text: str) -> PayloadRejected:
    with pytest.raises(PayloadRejected) as caught:
        parse(text)
    return caught.value


ADMIT = """
MSH|^~\\&|ADT|GOOD HOSP|HUB|CONCORD|20240301120000+0100||ADT^A01^ADT_A01|CTRL-1|P|2.5
EVN|A01|20240301120000+0100
PID|1||MRN-1^^^GOOD HOSP^MR~555-55-0000^^^SSA^SS||Testperson^Alex^Jo^Jr^Dr||19800102|F|||1 Synthetic Way^Unit 2^Springfield^ST^12345^US^H||^PRN^PH^^^555^0100000~^NET^Internet^alex@example.invalid|^WPN^PH^^^555^0100001|en|M
PV1|1|I|WARD^101^A^GOOD HOSP||||1234^Doctor^Dana^^^Dr^^^NPI&2.16.840.1.113883.4.6&ISO||||||||||||VISIT-9^^^GOOD HOSP^VN|||||||||||||||||||||||||20240301113000+0100
ZPI|custom|segment
"""


def test_an_admission_maps_to_patient_encounter_location_and_practitioner() -> None:
    parsed = parse(ADMIT)

    assert [entry.resource_type for entry in parsed.entries] == [
        "Patient", "Practitioner", "Location", "Encounter",
    ]  # fmt: skip
    patient = resources(parsed, "Patient")[0]
    assert patient["identifier"][0] == {
        "value": "MRN-1",
        "system": "GOOD%20HOSP",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
    }
    assert patient["identifier"][1]["system"] == "SSA"
    assert patient["name"] == [
        {"family": "Testperson", "given": ["Alex", "Jo"], "prefix": ["Dr"], "suffix": ["Jr"]}
    ]
    assert patient["birthDate"] == "1980-01-02"
    assert patient["gender"] == "female"
    assert patient["address"] == [
        {
            "line": ["1 Synthetic Way", "Unit 2"],
            "city": "Springfield",
            "state": "ST",
            "postalCode": "12345",
            "country": "US",
            "use": "home",
        }
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "(555) 0100000", "use": "home"},
        {"system": "email", "value": "alex@example.invalid"},
        {"system": "phone", "value": "(555) 0100001", "use": "work"},
    ]
    assert patient["maritalStatus"] == {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]
    }
    assert patient["communication"] == [
        {"language": {"coding": [{"code": "en", "system": "urn:ietf:bcp:47"}]}, "preferred": True}
    ]
    encounter = resources(parsed, "Encounter")[0]
    assert encounter["status"] == "in-progress"
    assert encounter["class"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "IMP",
        "display": "inpatient encounter",
    }
    assert encounter["period"] == {"start": "2024-03-01T11:30:00+01:00"}
    assert encounter["identifier"] == [{"value": "VISIT-9", "system": "GOOD%20HOSP", "type": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]}}]  # fmt: skip
    assert encounter["subject"] == {"reference": f"Patient/{patient['id']}"}
    practitioner = resources(parsed, "Practitioner")[0]
    assert practitioner["identifier"] == [{"value": "1234", "system": "urn:oid:2.16.840.1.113883.4.6"}]
    assert encounter["participant"][0]["individual"] == {"reference": f"Practitioner/{practitioner['id']}"}
    assert resources(parsed, "Location")[0]["name"] == "WARD 101 A"


def test_the_same_message_sent_again_gives_the_same_ids() -> None:
    first = [(entry.resource_type, entry.source_id) for entry in parse(ADMIT).entries]
    again = [(entry.resource_type, entry.source_id) for entry in parse(ADMIT).entries]

    assert first == again


def test_a_later_message_about_the_same_patient_and_visit_keeps_their_ids() -> None:
    discharge = ADMIT.replace("ADT^A01^ADT_A01|CTRL-1", "ADT^A03^ADT_A03|CTRL-2").replace(
        "EVN|A01", "EVN|A03"
    )
    discharge = discharge.replace("20240301113000+0100\n", "20240301113000+0100|20240305090000+0100\n")

    admitted, discharged = parse(ADMIT), parse(discharge)

    assert resources(admitted, "Patient")[0]["id"] == resources(discharged, "Patient")[0]["id"]
    encounter = resources(discharged, "Encounter")[0]
    assert encounter["id"] == resources(admitted, "Encounter")[0]["id"]
    assert encounter["status"] == "finished"
    assert encounter["period"] == {"start": "2024-03-01T11:30:00+01:00", "end": "2024-03-05T09:00:00+01:00"}


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_every_segment_separator_is_accepted(separator: str) -> None:
    assert len(parse(ADMIT, separator=separator).entries) == 4


def test_a_byte_order_mark_is_skipped() -> None:
    body = b"\xef\xbb\xbf" + ADMIT.strip().replace("\n", "\r").encode()

    assert len(hl7v2_payload_parse(body, lookup=no_lookup).entries) == 4


def test_latin_1_is_read_when_the_bytes_are_not_utf_8() -> None:
    body = ADMIT.strip().replace("\n", "\r").replace("Testperson", "Testp\xe9rson").encode("latin-1")

    patient = resources(hl7v2_payload_parse(body, lookup=no_lookup), "Patient")[0]

    assert patient["name"][0]["family"] == "Testp\xe9rson"


def test_escape_sequences_are_decoded_after_splitting() -> None:
    separators = Separators()

    assert unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", separators) == "a|b^c&d~e\\f"
    assert unescape("caf\\XC3A9\\ \\X41\\", separators) == "café A"
    assert unescape("line\\.br\\next", separators) == "line\nnext"


def test_an_escaped_separator_stays_inside_its_value() -> None:
    text = ADMIT.replace("Testperson^Alex", "Test\\S\\person^Alex")

    assert resources(parse(text), "Patient")[0]["name"][0]["family"] == "Test^person"


def test_other_separators_declared_in_msh_are_used() -> None:
    text = "\n".join(
        [
            "MSH#*@!%#ADT#HOSP#HUB#CONCORD#20240301120000##ADT*A04#CTRL-7#P#2.3",
            "PID#1##MRN-7***HOSP*MR##Doe*Sam##19700101#M",
            "PV1#1#O",
        ]
    )

    parsed = parse(text)

    patient = resources(parsed, "Patient")[0]
    assert patient["identifier"][0]["value"] == "MRN-7"
    assert patient["name"] == [{"family": "Doe", "given": ["Sam"]}]
    assert resources(parsed, "Encounter")[0]["class"]["code"] == "AMB"


def test_a_batch_of_messages_maps_to_one_bundle() -> None:
    second = ADMIT.replace("CTRL-1", "CTRL-2").replace("MRN-1", "MRN-2").replace("VISIT-9", "VISIT-10")
    text = "FHS|^~\\&|ADT\nBHS|^~\\&|ADT\n" + ADMIT.strip() + "\n" + second.strip() + "\nBTS|2\nFTS|1"

    parsed = parse(text)

    assert len(resources(parsed, "Patient")) == 2
    assert len(resources(parsed, "Encounter")) == 2
    assert parsed.bundle_type == "transaction"


def test_a_batch_whose_trailer_counts_more_messages_is_truncated() -> None:
    text = "BHS|^~\\&|ADT\n" + ADMIT.strip() + "\nBTS|3"

    error = rejected(text)

    assert error.kind == "truncated"
    assert [str(problem) for problem in error.problems] == [
        "BTS-1: the batch trailer counts 3 messages but the batch holds 1: the file looks truncated or padded"
    ]


def test_a_batch_without_its_trailer_is_truncated() -> None:
    error = rejected("BHS|^~\\&|ADT\n" + ADMIT.strip())

    assert error.kind == "truncated"
    assert str(error.problems[0]) == "BHS: the BHS batch has no BTS trailer: the file looks truncated"


def test_repeating_fields_give_several_identifiers_and_names() -> None:
    text = ADMIT.replace("Testperson^Alex^Jo^Jr^Dr", "Testperson^Alex^^^^^L~Nick^Al^^^^^N")

    patient = resources(parse(text), "Patient")[0]

    assert [identifier["value"] for identifier in patient["identifier"]] == ["MRN-1", "555-55-0000"]
    assert patient["name"] == [
        {"use": "official", "family": "Testperson", "given": ["Alex"]},
        {"use": "nickname", "family": "Nick", "given": ["Al"]},
    ]


def test_version_2_8_with_an_iso_assigning_authority() -> None:
    text = ADMIT.replace("|P|2.5", "|P|2.8").replace("MRN-1^^^GOOD HOSP^MR", "MRN-1^^^GH&1.2.3.4&ISO^MR")

    patient = resources(parse(text), "Patient")[0]

    assert patient["identifier"][0]["system"] == "urn:oid:1.2.3.4"


def test_a_time_without_offset_takes_the_offset_of_msh_7() -> None:
    text = ADMIT.replace("20240301113000+0100", "202403011130")

    assert resources(parse(text), "Encounter")[0]["period"] == {"start": "2024-03-01T11:30:00+01:00"}


def test_a_time_without_any_offset_uses_the_default_time_zone() -> None:
    text = ADMIT.replace("20240301120000+0100", "20240701120000").replace(
        "20240301113000+0100", "202407011130"
    )
    body = text.strip().replace("\n", "\r").encode()

    bundle = hl7v2_bundle(body, default_timezone="America/New_York")

    encounter = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    assert encounter["period"] == {"start": "2024-07-01T11:30:00-04:00"}


@pytest.mark.parametrize(
    ("trigger", "status"),
    [
        ("A04", "in-progress"),
        ("A05", "planned"),
        ("A11", "cancelled"),
        ("A13", "in-progress"),
        ("A02", "in-progress"),
    ],
)
def test_encounter_status_follows_the_trigger(trigger: str, status: str) -> None:
    text = ADMIT.replace("ADT^A01^ADT_A01", f"ADT^{trigger}")

    assert resources(parse(text), "Encounter")[0]["status"] == status


def test_an_admission_without_an_admit_time_starts_when_the_event_occurred_never_at_the_message_time() -> (
    None
):
    without_admit_time = ADMIT.replace("|||20240301113000+0100", "|||")
    occurred = without_admit_time.replace(
        "EVN|A01|20240301120000+0100", "EVN|A01|20240301120000+0100||||20240301111500+0100"
    )

    assert "period" not in resources(parse(without_admit_time), "Encounter")[0]
    assert resources(parse(occurred), "Encounter")[0]["period"] == {"start": "2024-03-01T11:15:00+01:00"}
    assert resources(parse(ADMIT), "Encounter")[0]["period"] == {"start": "2024-03-01T11:30:00+01:00"}


@pytest.mark.parametrize(
    ("patient_class", "discharge", "status"),
    [
        ("P", "", "planned"),
        ("I", "", "in-progress"),
        ("U", "", "unknown"),
        ("", "", "unknown"),
        ("I", "|20240305090000+0100", "finished"),
    ],
)
def test_an_update_takes_the_encounter_status_from_the_discharge_time_or_the_patient_class(
    patient_class: str, discharge: str, status: str
) -> None:
    text = ADMIT.replace("ADT^A01^ADT_A01", "ADT^A08^ADT_A01").replace("PV1|1|I|", f"PV1|1|{patient_class}|")
    text = text.replace("20240301113000+0100\n", f"20240301113000+0100{discharge}\n")

    assert resources(parse(text), "Encounter")[0]["status"] == status


def test_street_address_parts_other_designation_and_addressee_are_address_lines() -> None:
    street = "1 Synthetic Way&Synthetic Way&1^Unit 2^Springfield^ST^12345^US^H" + "^" * 12 + "Care of Sam Doe"
    text = ADMIT.replace("1 Synthetic Way^Unit 2^Springfield^ST^12345^US^H", street)

    patient = resources(parse(text), "Patient")[0]

    assert patient["address"][0]["line"] == [
        "1 Synthetic Way",
        "Synthetic Way",
        "1",
        "Unit 2",
        "Care of Sam Doe",
    ]


def test_a_transfer_records_the_prior_location_as_completed() -> None:
    text = ADMIT.replace("ADT^A01^ADT_A01", "ADT^A02").replace(
        "GOOD HOSP||||1234", "GOOD HOSP|||OLDWARD^7|1234"
    )

    encounter = resources(parse(text), "Encounter")[0]

    assert [location["status"] for location in encounter["location"]] == ["completed", "active"]


@pytest.mark.parametrize("trigger", ["A28", "A31"])
def test_person_information_messages_give_a_patient_only(trigger: str) -> None:
    text = ADMIT.replace("ADT^A01^ADT_A01", f"ADT^{trigger}")

    assert [entry.resource_type for entry in parse(text).entries] == ["Patient"]


def test_a_merge_links_the_survivor_to_the_prior_record() -> None:
    text = "\n".join(
        [
            "MSH|^~\\&|ADT|HOSP|HUB|CONCORD|20240301120000||ADT^A40^ADT_A39|CTRL-40|P|2.5",
            "EVN|A40|20240301120000",
            "PID|1||MRN-1^^^HOSP^MR||Testperson^Alex",
            "MRG|MRN-OLD^^^HOSP^MR",
        ]
    )
    admitted_before = parse(ADMIT.replace("MRN-1^^^GOOD HOSP^MR~555-55-0000^^^SSA^SS", "MRN-OLD^^^HOSP^MR"))

    prior, survivor = resources(parse(text), "Patient")

    assert prior["id"] == resources(admitted_before, "Patient")[0]["id"]
    assert prior["active"] is False
    assert prior["link"] == [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    assert survivor["link"] == [{"other": {"reference": f"Patient/{prior['id']}"}, "type": "replaces"}]
    assert survivor["identifier"][-1] == {
        "value": "MRN-OLD",
        "use": "old",
        "system": "HOSP",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
    }


RESULTS = """
MSH|^~\\&|LAB|HOSP|HUB|CONCORD|20240301120000-0500||ORU^R01^ORU_R01|LAB-1|P|2.5.1
PID|1||MRN-1^^^HOSP^MR||Testperson^Alex||19800102|F
OBR|1|PLACER-1|FILLER-1^LAB|24317-0^Hemogram^LN|||20240301080000-0500||||||||||||||||||F
OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL^^UCUM|12.0-16.0|N|||F|||20240301090000-0500
OBX|2|ST|8251-1^Comment^LN||looks fine||||||P
OBX|3|SN|5130-0^Titer^LN||^1^:^128||||||F
OBX|4|SN|2345-7^Glucose^LN||>^200|mg/dL|||||C
OBX|5|CWE|600-7^Culture^LN||27268008^Salmonella^SCT||||||F
OBX|6|NM|8867-4^Heart rate^LN||72|beats/min|||||X
"""


def test_an_order_detail_obx_is_no_observation_and_a_local_coding_system_is_a_valid_uri() -> None:
    text = RESULTS.replace(
        "OBX|6|NM|8867-4^Heart rate^LN||72|beats/min|||||X",
        "OBX|6|ST|SPEC^Specimen source^LOCAL LAB||venous blood||||||O\n"
        "OBX|7|NM|1554-5^GLUCOSE^POST 12H CFST||98|mg/dL|||||F",
    )

    observations = resources(parse(text), "Observation")

    assert [observation["code"]["coding"][0]["code"] for observation in observations] == [
        "718-7", "8251-1", "5130-0", "2345-7", "600-7", "1554-5",
    ]  # fmt: skip
    assert observations[-1]["code"]["coding"][0]["system"] == "POST%2012H%20CFST"


def test_a_result_message_maps_to_a_report_with_observations() -> None:
    parsed = parse(RESULTS)

    report = resources(parsed, "DiagnosticReport")[0]
    observations = resources(parsed, "Observation")
    patient = resources(parsed, "Patient")[0]
    assert report["status"] == "final"
    assert report["identifier"] == [{"value": "FILLER-1", "system": "LAB"}]
    assert report["result"] == [
        {"reference": f"Observation/{observation['id']}"} for observation in observations
    ]
    assert {observation["subject"]["reference"] for observation in observations} == {
        f"Patient/{patient['id']}"
    }
    hemoglobin, comment, titer, glucose, culture, heart_rate = observations
    assert hemoglobin["code"] == {
        "coding": [{"code": "718-7", "system": "http://loinc.org", "display": "Hemoglobin"}]
    }
    assert hemoglobin["valueQuantity"] == {
        "value": 13.5, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL",
    }  # fmt: skip
    assert hemoglobin["referenceRange"] == [
        {
            "low": {"value": 12.0, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
            "high": {"value": 16.0, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
        }
    ]
    assert hemoglobin["interpretation"] == [
        {
            "coding": [
                {"code": "N", "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"}
            ]
        }
    ]
    assert hemoglobin["effectiveDateTime"] == "2024-03-01T09:00:00-05:00"
    assert comment["valueString"] == "looks fine"
    assert comment["status"] == "preliminary"
    assert comment["effectiveDateTime"] == "2024-03-01T08:00:00-05:00"  # OBR-7 when OBX-14 is empty
    assert titer["valueRatio"] == {"numerator": {"value": 1}, "denominator": {"value": 128}}
    assert glucose["valueQuantity"] == {
        "value": 200, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL", "comparator": ">",
    }  # fmt: skip
    assert glucose["status"] == "corrected"
    assert culture["valueCodeableConcept"] == {
        "coding": [{"code": "27268008", "system": "http://snomed.info/sct", "display": "Salmonella"}]
    }
    assert heart_rate["valueQuantity"] == {"value": 72, "unit": "beats/min"}
    assert heart_rate["status"] == "cancelled"


def test_a_corrected_result_in_a_new_message_keeps_the_observation_id() -> None:
    corrected = RESULTS.replace("LAB-1|P", "LAB-2|P").replace("||13.5|", "||13.7|")

    first, second = resources(parse(RESULTS), "Observation"), resources(parse(corrected), "Observation")

    assert [observation["id"] for observation in first] == [observation["id"] for observation in second]


SCHEDULE = """
MSH|^~\\&|SCHED|HOSP|HUB|CONCORD|20240301120000+0000||SIU^{trigger}^SIU_S12|SCH-1|P|2.4
SCH|APPT-1^SCHED||||||CHECKUP^Check-up|ROUTINE|30|MIN|^^^20240310100000+0000
PID|1||MRN-1^^^HOSP^MR||Testperson^Alex||19800102|F
AIP|1||1234^Doctor^Dana^^^Dr
"""


@pytest.mark.parametrize(
    ("trigger", "status"), [("S12", "booked"), ("S13", "booked"), ("S14", "booked"), ("S15", "cancelled")]
)
def test_scheduling_messages_map_to_an_appointment(trigger: str, status: str) -> None:
    parsed = parse(SCHEDULE.replace("{trigger}", trigger))

    appointment = resources(parsed, "Appointment")[0]
    patient, practitioner = resources(parsed, "Patient")[0], resources(parsed, "Practitioner")[0]
    assert appointment["status"] == status
    assert appointment["start"] == "2024-03-10T10:00:00+00:00"
    assert appointment["end"] == "2024-03-10T10:30:00+00:00"
    assert appointment["minutesDuration"] == 30
    assert [participant["actor"]["reference"] for participant in appointment["participant"]] == [
        f"Patient/{patient['id']}",
        f"Practitioner/{practitioner['id']}",
    ]


def test_text_that_is_not_hl7_is_rejected() -> None:
    error = rejected("hello, world")

    assert error.kind == "not-hl7"
    assert [str(problem) for problem in error.problems] == [
        "line 1: this is not HL7 v2: it does not start with an MSH, FHS or BHS segment"
    ]


def test_segments_without_msh_are_rejected() -> None:
    error = rejected("PID|1||MRN-1^^^HOSP^MR")

    assert error.kind == "not-hl7"
    assert [str(problem) for problem in error.problems] == [
        "line 1: this is not an HL7 v2 message: it starts with PID, not MSH"
    ]


def test_an_empty_payload_is_rejected() -> None:
    with pytest.raises(PayloadRejected) as caught:
        hl7v2_payload_parse(b" \r\n", lookup=no_lookup)

    assert caught.value.kind == "empty"


def test_a_message_cut_after_msh_is_truncated() -> None:
    error = rejected("MSH|^~\\&|ADT|HOSP|HUB|CONCORD|20240301120000||ADT^A01|CTRL-1|P|2.5")

    assert error.kind == "truncated"
    assert [str(problem) for problem in error.problems] == [
        "message 1: ADT^A01 requires segment PID but it is missing: the message looks truncated",
        "message 1: ADT^A01 requires segment PV1 but it is missing: the message looks truncated",
    ]


def test_a_header_cut_short_is_truncated() -> None:
    error = rejected("MSH|^~\\&|ADT|HOSP|HUB|CONCORD|2024")

    assert error.kind == "truncated"
    assert [str(problem) for problem in error.problems] == [
        "message 1, segment 1 (MSH): MSH has no MSH-9, MSH-10, MSH-12: the message looks truncated"
    ]


def test_an_unsupported_message_type_is_named_with_the_supported_ones() -> None:
    error = rejected(ADMIT.replace("ADT^A01^ADT_A01", "ORM^O01"))

    assert error.kind == "unsupported-message"
    assert str(error.problems[0]) == (
        "message 1, segment 1 (MSH), field MSH-9: message type ORM^O01 is not supported; supported: ADT^A01, "
        "ADT^A02, ADT^A03, ADT^A04, ADT^A05, ADT^A08, ADT^A11, ADT^A13, ADT^A28, ADT^A31, ADT^A40, ORU^R01, "
        "SIU^S12, SIU^S13, SIU^S14, SIU^S15"
    )


def test_an_unsupported_version_is_rejected() -> None:
    error = rejected(ADMIT.replace("|P|2.5", "|P|2.2"))

    assert error.kind == "unsupported-version"
    assert str(error.problems[0]) == (
        "message 1, segment 1 (MSH), field MSH-12: HL7 version 2.2 is not supported; supported: 2.3 to 2.8"
    )


def test_an_invalid_birth_date_is_located_without_quoting_it() -> None:
    error = rejected(ADMIT.replace("19800102", "19801302"))

    assert error.kind == "invalid-value"
    assert [str(problem) for problem in error.problems] == [
        "message 1, segment 3 (PID), field PID-7: invalid date: the value names a day that does not exist"
    ]
    assert "19801302" not in str(error.problems)


def test_problems_of_the_second_message_of_a_batch_name_it() -> None:
    second = ADMIT.replace("CTRL-1", "CTRL-2").replace("20240301113000+0100", "2024-03-01")

    error = rejected("BHS|^~\\&|ADT\n" + ADMIT.strip() + "\n" + second.strip() + "\nBTS|2")

    assert [str(problem) for problem in error.problems] == [
        "message 2, segment 4 (PV1), field PV1-44: invalid date/time: the value is not an HL7 date/time "
        "(YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"
    ]


def test_message_header_reads_the_routing_fields() -> None:
    header = message_header(ADMIT.strip().replace("\n", "\r").encode())

    assert header is not None
    assert (header.sending_application, header.sending_facility) == ("ADT", "GOOD HOSP")
    assert (header.receiving_application, header.receiving_facility) == ("HUB", "CONCORD")
    assert (header.message_control_id, header.processing_id, header.version) == ("CTRL-1", "P", "2.5")
    assert (header.message_type, header.trigger_event) == ("ADT", "A01")
    assert (header.field_separator, header.encoding_characters) == ("|", "^~\\&")


def test_message_header_is_none_without_msh() -> None:
    assert message_header(b"PID|1||X") is None
    assert message_header(b"") is None


def test_an_accepting_acknowledgement_swaps_sender_and_receiver() -> None:
    header = message_header(ADMIT.strip().replace("\n", "\r").encode())

    segments = acknowledgement(header, code="AA").decode().split("\r")

    msh = segments[0].split("|")
    assert msh[2:6] == ["HUB", "CONCORD", "ADT", "GOOD HOSP"]
    assert msh[8] == "ACK^A01^ACK"
    assert msh[9] != "CTRL-1"
    assert msh[10:] == ["P", "2.5"]
    assert segments[1:] == ["MSA|AA|CTRL-1", ""]


def test_an_error_acknowledgement_escapes_its_text_and_locates_the_error() -> None:
    header = message_header(ADMIT.strip().replace("\n", "\r").encode())

    text = acknowledgement(
        header, code="AE", text="bad value | here", error_location="message 1, segment 3 (PID), field PID-7"
    ).decode()

    assert text.split("\r")[1:] == [
        "MSA|AE|CTRL-1",
        "ERR||PID^1^7|207^Application internal error^HL70357|E||||bad value \\F\\ here",
        "",
    ]


def test_a_rejecting_acknowledgement_without_a_header_still_answers() -> None:
    segments = acknowledgement(None, code="AR", text="not HL7").decode().split("\r")

    assert segments[0].split("|")[8] == "ACK"
    assert segments[1:] == ["MSA|AR|", "ERR|||207^Application internal error^HL70357|E||||not HL7", ""]


def test_a_version_2_3_acknowledgement_uses_the_old_err_layout() -> None:
    header = message_header(ADMIT.replace("|P|2.5", "|P|2.3").strip().replace("\n", "\r").encode())

    segments = acknowledgement(
        header, code="AE", text="oops", error_location="message 1, segment 3 (PID), field PID-7"
    )

    assert segments.decode().split("\r")[2] == "ERR|PID^1^7^207&oops"


def test_an_explicit_null_and_an_unknown_sex_code_are_left_out() -> None:
    text = ADMIT.replace("19800102|F", '""|X')

    patient = resources(parse(text), "Patient")[0]

    assert "birthDate" not in patient
    assert "gender" not in patient
