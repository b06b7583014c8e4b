"""Reference check: our HL7 v2 mapping against Microsoft FHIR-Converter's expected output (ADT and ORU pairs).

Resources are matched by type and content (their ids are hashes), and fields compared by meaning.

Known disagreements (counted as such, listed here with the reason; "the v2-to-FHIR map" is HL7's
v2-to-FHIR mapping, whose concept maps are in ``../shared/data/terminology/hl7_v2_to_fhir_conceptmaps``):
- Patient identifier system: for an authority such as ``test1&2.16.1&HCD`` they name the system
  after HD-3 (the universal id *type*, ``.../Identifier/HCD``); the map's HD[uri] takes HD-1, the
  namespace, as Concord does. For a namespace with a space ("NIST MPI") they write a hyphen, Concord
  percent-encodes it (lossless); the same for a local coding-system name in OBX-3.
  Their placeholder prefixes ``http://example.com/v2-to-fhir-converter/Identifier/`` and
  ``.../CodeSystem/`` are stripped before comparing (their stand-in for "no URI known", not a
  meaning), and so is URL quoting.
- Patient name given: they add XPN-15 "called by" (the samples are v2.8) to the name's ``given``;
  the map's XPN[HumanName] makes it the given name of a second name with use "nickname", never
  part of the first, which keeps XPN-2 and XPN-3 only, as Concord does.
- Encounter period: for A04/A11 they take PV2-9 (expected discharge) as period.end; the map's
  PV2[Encounter] sends PV2-8/9 to planned start/end extensions, not to the period, and an expected
  time is no actual end. (Concord uses PV2-8/9 as the period of planned A05 encounters only.)
- Observation code: they give no Observation for an OBX of value type RP or ED, nor for an NM one
  sent as repetitions; Concord keeps them (the map's OBX[Observation] gives RP and ED values an
  attachment extension), and an OBX with an empty OBX-3 too (as an observation with what it
  carries). With their RP observation missing, our RP observation of the same OBX-3 code is
  compared with their NM one. An OBX whose OBX-11 is "O" (order detail only, no result) is no
  Observation for either.
- Observation status: OBX-11 "I" (specimen in lab, results pending) they map to "unknown"; the
  concept map leaves it unmapped, and Concord uses R4's "registered" (no result yet). The third
  one is the RP/NM pairing above ("F" against their "I").

Agreeing since the mapping was fixed: address lines (the map's XAD and SAD: SAD-1 to 3 are lines 1
to 3, XAD-2 line 4, XAD-19 addressee line 5), the A08 status (the Event[EncounterStatus] map: A08
conveys no status, so PV1-45 and the PV1-2 patient class decide, "P" giving "planned"), and the start
of an admission without PV1-44 (EVN-6 when the event occurred, never MSH-7, when the message was
written: PV1[Encounter] maps period.start from PV1-44 only).

The overall agreement is 657 of 706 compared fields (93.1%); the floor asserted is the 0.90 target.
"""

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from patients.ingest.hl7v2 import hl7v2_bundle

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hl7v2" / "msft_fhir_converter"
TEMPLATES = ("ADT_A01", "ADT_A02", "ADT_A03", "ADT_A04", "ADT_A05", "ADT_A08", "ADT_A11", "ADT_A13", "ADT_A28",
             "ADT_A31", "ADT_A40", "ORU_R01")  # fmt: skip

# Their stand-ins for "an authority (a coding system) with no URI": the name after it is the one the sender used.
PLACEHOLDER_SYSTEM_PREFIX = "http://example.com/v2-to-fhir-converter/Identifier/"
PLACEHOLDER_CODE_SYSTEM_PREFIX = "http://example.com/v2-to-fhir-converter/CodeSystem/"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data absent: {DATA}")

JSON = dict[str, Any]


def pairs() -> list[tuple[str, str]]:
    rows = (line.split("\t") for line in (DATA / "PAIRS.tsv").read_text().splitlines()[1:] if line.strip())
    return [(row[1], row[2]) for row in rows if row[0] in TEMPLATES]


def by_type(resources: list[JSON], resource_type: str) -> list[JSON]:
    return [resource for resource in resources if resource.get("resourceType") == resource_type]


def same_time(ours: Any, theirs: Any) -> bool:
    """Same instant; a date and a datetime agree when the date is the datetime's local date."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if len(ours) <= 10 or len(theirs) <= 10:
        return bool(str(ours)[:10] == str(theirs)[:10])
    try:
        return datetime.fromisoformat(ours) == datetime.fromisoformat(theirs)
    except ValueError:
        return bool(ours == theirs)


class Tally:
    def __init__(self) -> None:
        self.agree: Counter[str] = Counter()
        self.total: Counter[str] = Counter()

    def check(self, field: str, agree: bool) -> None:
        self.total[field] += 1
        self.agree[field] += int(agree)


def authority(identifier: JSON) -> str:
    """The assigning authority an identifier system names, without their placeholder prefix or URL quoting."""
    system = unquote(str(identifier.get("system", "")))
    return system.removeprefix(PLACEHOLDER_SYSTEM_PREFIX)


def code_system(coding: JSON) -> str:
    """The coding system a coding names, without their placeholder prefix or URL quoting (as for authorities)."""
    return unquote(str(coding.get("system", ""))).removeprefix(PLACEHOLDER_CODE_SYSTEM_PREFIX)


def compare_patient(tally: Tally, ours: JSON, theirs: JSON) -> None:
    their_identifiers = {identifier.get("value"): identifier for identifier in theirs.get("identifier", [])}
    for identifier in ours.get("identifier", []):
        if identifier.get("use") == "old":
            continue
        match = their_identifiers.get(identifier["value"])
        tally.check("Patient.identifier.value", match is not None)
        if match is not None:
            tally.check("Patient.identifier.system", authority(match) == authority(identifier))
    our_name, their_name = (ours.get("name") or [{}])[0], (theirs.get("name") or [{}])[0]
    if our_name or their_name:
        tally.check("Patient.name.family", our_name.get("family") == their_name.get("family"))
        tally.check("Patient.name.given", our_name.get("given") == their_name.get("given"))
    if "birthDate" in ours or "birthDate" in theirs:
        tally.check("Patient.birthDate", same_time(ours.get("birthDate"), theirs.get("birthDate")))
    if "gender" in ours or "gender" in theirs:
        tally.check(
            "Patient.gender", str(ours.get("gender", "")).lower() == str(theirs.get("gender", "")).lower()
        )
    our_address, their_address = (ours.get("address") or [{}])[0], (theirs.get("address") or [{}])[0]
    if our_address or their_address:
        for key in ("line", "city", "state", "postalCode"):
            if key in our_address or key in their_address:
                ours_value, theirs_value = our_address.get(key), their_address.get(key)
                if key == "line":
                    ours_value = [line.strip() for line in ours_value or []]
                    theirs_value = [line.strip() for line in theirs_value or []]
                else:
                    ours_value = (ours_value or "").strip()
                    theirs_value = (theirs_value or "").strip()
                tally.check(f"Patient.address.{key}", ours_value == theirs_value)


def compare_encounter(tally: Tally, ours: JSON, theirs: JSON) -> None:
    tally.check("Encounter.class", ours.get("class", {}).get("code") == theirs.get("class", {}).get("code"))
    tally.check("Encounter.status", ours.get("status") == theirs.get("status"))
    for bound in ("start", "end"):
        ours_value, theirs_value = ours.get("period", {}).get(bound), theirs.get("period", {}).get(bound)
        if ours_value or theirs_value:
            tally.check(f"Encounter.period.{bound}", same_time(ours_value, theirs_value))


def observation_key(observation: JSON) -> tuple[str, str]:
    coding = (observation.get("code", {}).get("coding") or [{}])[0]
    return str(coding.get("code", "")), str(observation.get("effectiveDateTime", ""))[:16]


def value_of(observation: JSON) -> Any:
    if "valueQuantity" in observation:
        quantity = observation["valueQuantity"]
        return ("quantity", float(quantity.get("value", 0)), quantity.get("code") or quantity.get("unit"))
    if "valueString" in observation:
        return ("string", observation["valueString"].strip())
    if "valueCodeableConcept" in observation:
        coding = (observation["valueCodeableConcept"].get("coding") or [{}])[0]
        return ("concept", coding.get("code"))
    return None


def compare_observations(tally: Tally, ours: list[JSON], theirs: list[JSON]) -> None:
    remaining = list(theirs)
    for observation in ours:
        code = observation_key(observation)[0]
        candidates = [other for other in remaining if observation_key(other)[0] == code]
        exact = [other for other in candidates if observation_key(other) == observation_key(observation)]
        found = exact or candidates
        match = found[0] if found else None
        tally.check("Observation.code", match is not None)
        if match is None:
            continue
        remaining.remove(match)
        our_coding = (observation["code"].get("coding") or [{}])[0]
        their_coding = (match["code"].get("coding") or [{}])[0]
        tally.check("Observation.code.system", code_system(our_coding) == code_system(their_coding))
        tally.check("Observation.status", observation.get("status") == match.get("status"))
        if value_of(observation) is not None or value_of(match) is not None:
            tally.check("Observation.value", value_of(observation) == value_of(match))


def test_mapping_agrees_with_the_reference_converter() -> None:
    tally = Tally()
    for input_name, expected_name in pairs():
        bundle = hl7v2_bundle((DATA / "input" / input_name).read_bytes())
        ours = [entry["resource"] for entry in bundle["entry"]]
        expected = json.loads((DATA / "expected_fhir" / expected_name).read_text(encoding="utf-8-sig"))
        theirs = [entry["resource"] for entry in expected.get("entry", [])]
        our_patients = [patient for patient in by_type(ours, "Patient") if patient.get("active") is not False]
        for patient, other in zip(our_patients, by_type(theirs, "Patient"), strict=False):
            compare_patient(tally, patient, other)
        for encounter, other in zip(by_type(ours, "Encounter"), by_type(theirs, "Encounter"), strict=False):
            compare_encounter(tally, encounter, other)
        compare_observations(tally, by_type(ours, "Observation"), by_type(theirs, "Observation"))

    print(f"\n{'field':34} {'agree':>6} {'total':>6} {'share':>7}")
    for field in sorted(tally.total):
        share = tally.agree[field] / tally.total[field]
        print(f"{field:34} {tally.agree[field]:6} {tally.total[field]:6} {share:7.1%}")
    agree, total = sum(tally.agree.values()), sum(tally.total.values())
    print(f"{'overall':34} {agree:6} {total:6} {agree / total:7.1%}")
    assert total > 100
    assert agree / total >= 0.90
