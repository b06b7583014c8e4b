"""Terminology maps: a source's local codes and free-text names to standard codes.

A map entry says: for this source (or every source), local system + local code (or a free-text alias)
means standard system + code + display. `local_code` "*" maps a whole system to a standard one with the
same codes (an OID or an HL7 table 0396 id such as "LN" for LOINC). The shipped defaults are the project's
own `data/terminology_maps.csv`; data stewards add the rest (governance.models.TerminologyMap).

The functions here are pure: they take the maps as an argument. `terminology_maps_current()` is the one
door to the database, so ingestion depends on this module alone: it loads the maps once per process and
checks a cheap version stamp at most every MAPS_RECHECK_SECONDS, so a steward's new map reaches every
worker within that time without a query per resource.
"""

import csv
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MATCH_EXTENSION_URL = "https://concord.example.org/fhir/StructureDefinition/terminology-match"
DEFAULTS_PATH = Path(__file__).resolve().parent / "data" / "terminology_maps.csv"
SAME_CODE = "*"
MAPS_RECHECK_SECONDS = 10.0

# Code systems whose codes are already standard: a concept carrying one of these needs no map.
STANDARD_SYSTEMS = frozenset(
    {
        "http://loinc.org",
        "http://snomed.info/sct",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://hl7.org/fhir/sid/icd-10",
        "http://hl7.org/fhir/sid/icd-9-cm",
        "http://hl7.org/fhir/sid/cvx",
        "http://hl7.org/fhir/sid/ndc",
        "http://www.ama-assn.org/go/cpt",
        "http://unitsofmeasure.org",
        "http://www.cms.gov/Medicare/Coding/ICD10",
        "urn:iso:std:iso:11073:10101",
        "http://dicom.nema.org/resources/ontology/DCM",
    }
)
# HL7-published code systems (v2 tables, v3 and FHIR value sets) are standard as well.
STANDARD_SYSTEM_PREFIXES = ("http://terminology.hl7.org/CodeSystem/", "http://hl7.org/fhir/")


@dataclass(frozen=True)
class MapEntry:
    standard_system: str
    standard_code: str
    standard_display: str = ""
    local_system: str = ""
    local_code: str = ""
    alias: str = ""
    source_slug: str = ""  # "" for every source


@dataclass(frozen=True)
class TerminologyMaps:
    by_code: dict[tuple[str, str, str], MapEntry] = field(default_factory=dict)
    by_system: dict[tuple[str, str], MapEntry] = field(default_factory=dict)
    by_alias: dict[tuple[str, str], MapEntry] = field(default_factory=dict)
    version: str = ""


@dataclass(frozen=True)
class UnmappedConcept:
    """A concept no map or policy could give a standard code: a local coding, or only text (system "")."""

    system: str
    code: str
    display: str
    alias: str = ""


def alias_normalize(text: str) -> str:
    """How free text is compared: lower case, punctuation as spaces, single spaces."""
    return " ".join(re.sub(r"[^\w%]+", " ", text.lower()).split())


def is_standard_system(system: Any) -> bool:
    return isinstance(system, str) and (
        system in STANDARD_SYSTEMS or system.startswith(STANDARD_SYSTEM_PREFIXES)
    )


def terminology_maps_build(entries: Iterable[MapEntry], *, version: str = "") -> TerminologyMaps:
    maps = TerminologyMaps(version=version)
    for entry in entries:
        if entry.alias:
            maps.by_alias[(entry.source_slug, alias_normalize(entry.alias))] = entry
        elif entry.local_code == SAME_CODE:
            maps.by_system[(entry.source_slug, entry.local_system)] = entry
        elif entry.local_code:
            maps.by_code[(entry.source_slug, entry.local_system, entry.local_code)] = entry
    return maps


def default_map_entries(path: Path = DEFAULTS_PATH) -> list[MapEntry]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            MapEntry(
                standard_system=row["standard_system"].strip(),
                standard_code=row["standard_code"].strip(),
                standard_display=row["standard_display"].strip(),
                local_system=row["local_system"].strip(),
                local_code=row["local_code"].strip(),
                alias=alias_normalize(row["alias"]),
            )
            for row in csv.DictReader(handle)
        ]


def _entry_for_coding(maps: TerminologyMaps, *, source_slug: str, system: str, code: str) -> MapEntry | None:
    for slug in (source_slug, ""):
        entry = maps.by_code.get((slug, system, code)) or maps.by_system.get((slug, system))
        if entry is not None:
            return entry
    return None


def _entry_for_text(maps: TerminologyMaps, *, source_slug: str, text: str) -> MapEntry | None:
    key = alias_normalize(text)
    return maps.by_alias.get((source_slug, key)) or maps.by_alias.get(("", key))


def _mapped_coding(entry: MapEntry, code: str) -> dict[str, Any]:
    coding: dict[str, Any] = {
        "extension": [{"url": MATCH_EXTENSION_URL, "extension": [{"url": "method", "valueCode": "map"}]}],
        "system": entry.standard_system,
        "code": code,
    }
    if entry.standard_display:
        coding["display"] = entry.standard_display
    return coding


def _codings(concept: dict[str, Any]) -> list[dict[str, Any]]:
    return [coding for coding in concept.get("coding") or [] if isinstance(coding, dict)]


def concept_map(concept: dict[str, Any], *, maps: TerminologyMaps, source_slug: str) -> dict[str, Any]:
    """The concept with the standard codings its local codings (or its text) map to, added after them.

    The source's codings and text stay as sent; a standard coding already present is not added twice.
    Returns the same object when nothing is added.
    """
    codings = _codings(concept)
    present = {(coding.get("system"), coding.get("code")) for coding in codings}
    added: list[dict[str, Any]] = []
    for coding in codings:
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(code, str) or is_standard_system(system):
            continue
        entry = _entry_for_coding(maps, source_slug=source_slug, system=system, code=code)
        if entry is None:
            continue
        standard_code = code if entry.local_code == SAME_CODE else entry.standard_code
        if (entry.standard_system, standard_code) not in present:
            present.add((entry.standard_system, standard_code))
            mapped = _mapped_coding(entry, standard_code)
            if entry.local_code == SAME_CODE and isinstance(coding.get("display"), str):
                mapped["display"] = coding["display"]
            added.append(mapped)
    if not any(is_standard_system(system) for system, _ in present):
        texts = [concept.get("text"), *(coding.get("display") for coding in codings)]
        for text in texts:
            if not isinstance(text, str):
                continue
            entry = _entry_for_text(maps, source_slug=source_slug, text=text)
            if entry is not None and (entry.standard_system, entry.standard_code) not in present:
                added.append(_mapped_coding(entry, entry.standard_code))
                break
    if not added:
        return concept
    return {**concept, "coding": [*codings, *added]}


def concept_has_standard_coding(concept: dict[str, Any] | None) -> bool:
    return any(
        is_standard_system(coding.get("system")) and coding.get("code") for coding in _codings(concept or {})
    )


def concept_unmapped(
    concept: dict[str, Any] | None, *, include_standard: bool = False
) -> list[UnmappedConcept]:
    """What a steward would have to map for this concept: its local codings, or its text when it has none.

    ``include_standard`` lists standard codings too: a medication's NDC or RxNorm product code that the
    medication table does not know still needs a map to its ingredients.
    """
    concept = concept or {}
    local = [
        UnmappedConcept(
            system=str(coding.get("system") or ""),
            code=str(coding["code"]),
            display=str(coding.get("display") or concept.get("text") or ""),
        )
        for coding in _codings(concept)
        if coding.get("code") and (include_standard or not is_standard_system(coding.get("system")))
    ]
    if local:
        return local
    texts = [concept.get("text"), *(coding.get("display") for coding in _codings(concept))]
    text = next((item for item in texts if isinstance(item, str) and item.strip()), None)
    if text is None:
        return []
    return [UnmappedConcept(system="", code="", display=text.strip(), alias=alias_normalize(text))]


class _MapsCache:
    """Per-process maps, rebuilt when the stored maps' version stamp changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.maps: TerminologyMaps | None = None
        self.checked_at = 0.0

    def current(self) -> TerminologyMaps:
        # Imported here: this module stays importable (and pure) without Django's app registry.
        from governance.selectors import terminology_map_entries, terminology_maps_version

        now = time.monotonic()
        with self.lock:
            if self.maps is not None and now - self.checked_at < MAPS_RECHECK_SECONDS:
                return self.maps
            version = terminology_maps_version()
            if self.maps is None or self.maps.version != version:
                self.maps = terminology_maps_build(terminology_map_entries(), version=version)
            self.checked_at = now
            return self.maps

    def clear(self) -> None:
        with self.lock:
            self.maps = None


_cache = _MapsCache()


def terminology_maps_current() -> TerminologyMaps:
    """The stored maps (shipped defaults and stewards' maps), loaded once per process and kept fresh."""
    return _cache.current()


def terminology_maps_forget() -> None:
    """Drop this process's copy, so the next call reloads (after a change in this process, and in tests)."""
    _cache.clear()


def unmapped_codes_report(*, source_id: int, seen: Counter[tuple[str, UnmappedConcept]]) -> None:
    """Add what one payload left unmapped to the stewards' queue (governance.services does the write)."""
    from governance.services import unmapped_codes_record

    unmapped_codes_record(source_id=source_id, seen=seen)
