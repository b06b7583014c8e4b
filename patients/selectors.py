"""Reads of source systems, their payloads and golden patients, for the pages and the APIs."""

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import jellyfish
from django.db.models import (
    Case,
    CharField,
    Count,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Lower
from django.db.models.lookups import LessThanOrEqual, StartsWith

from core.permissions import has_object_access, objects_for_user
from patients.matching.features import ascii_fold, given_name_groups, patient_features, phonetic
from patients.matching.linking import MatchResult, patients_match
from patients.models import (
    InboundPayload,
    MatchKey,
    Patient,
    PatientLink,
    Source,
    SourceIdentifier,
    SourcePatient,
    SourceResource,
)
from patients.normalize import patient_resource_normalize, phone_to_e164


def source_for_token(token: str) -> Source | None:
    """The active source an API token belongs to, or None."""
    if not token:
        return None
    return Source.objects.filter(api_token_sha256=Source.token_digest(token), is_active=True).first()


@dataclass(frozen=True)
class SourceStatus:
    source: Source
    last_received_at: datetime | None
    payloads: int
    accepted: int
    quarantined: int
    patients: int
    resources: int
    last_error: str
    last_error_at: datetime | None


def source_status_list() -> list[SourceStatus]:
    """Every source with its ingestion figures: a few aggregate queries, whatever the number of sources."""
    latest_quarantined = InboundPayload.objects.filter(
        source=OuterRef("pk"), status=InboundPayload.Status.QUARANTINED
    ).order_by("-processed_at")
    sources = Source.objects.annotate(
        last_received=Max("payloads__last_received_at"),
        payload_count=Count("payloads"),
        accepted_count=Count("payloads", filter=Q(payloads__status=InboundPayload.Status.ACCEPTED)),
        quarantined_count=Count("payloads", filter=Q(payloads__status=InboundPayload.Status.QUARANTINED)),
        last_error=Subquery(latest_quarantined.values("error")[:1]),
        last_error_at=Subquery(latest_quarantined.values("processed_at")[:1]),
    ).order_by("name")
    patients = dict(Source.objects.annotate(n=Count("patients")).values_list("pk", "n"))
    resources = dict(Source.objects.annotate(n=Count("resources")).values_list("pk", "n"))
    return [
        SourceStatus(
            source=source,
            last_received_at=source.last_received,
            payloads=source.payload_count,
            accepted=source.accepted_count,
            quarantined=source.quarantined_count,
            patients=patients.get(source.pk, 0),
            resources=resources.get(source.pk, 0),
            last_error=source.last_error or "",
            last_error_at=source.last_error_at,
        )
        for source in sources
    ]


def payload_list(*, source: Source | None = None, status: str = "") -> QuerySet[InboundPayload]:
    """Payload metadata, newest first; the body (PHI) is deferred and never listed."""
    payloads = InboundPayload.objects.select_related("source").defer("body")
    if source is not None:
        payloads = payloads.filter(source=source)
    if status:
        payloads = payloads.filter(status=status)
    return payloads.order_by("-received_at")


def stored_resource_get(
    *, source: Source, resource_type: str, source_record_id: str
) -> dict[str, Any] | None:
    """The current stored JSON of one source record, or None."""
    if resource_type == "Patient":
        patients = SourcePatient.objects.filter(source=source, source_record_id=source_record_id)
        return patients.values_list("resource", flat=True).first()
    resources = SourceResource.objects.filter(
        source=source, resource_type=resource_type, source_record_id=source_record_id
    )
    return resources.values_list("resource", flat=True).first()


def golden_patients_visible(user: Any) -> QuerySet[Patient]:
    """Active golden patients ``user`` may see: all with the model permission, else those granted to them."""
    return objects_for_user(user, "patients.view_patient", Patient.objects.filter(is_active=True))


def golden_patient_get(*, user: Any, external_id: Any) -> Patient | None:
    """The golden patient with this id, following merges to the survivor; None when missing or not allowed.

    Missing and forbidden answer alike, so that ids cannot be probed.
    """
    patient = Patient.objects.filter(external_id=external_id).first()
    seen = set()
    while patient is not None and patient.merged_into_id is not None and patient.pk not in seen:
        seen.add(patient.pk)
        patient = Patient.objects.filter(pk=patient.merged_into_id).first()
    if patient is None or not has_object_access(user, "patients.view_patient", patient):
        return None
    return patient


@dataclass(frozen=True)
class PatientSearchHit:
    patient: Patient
    score: float  # 0..2: how well the name agrees (1 per name part), or 2 for an exact contact/identifier hit
    matched_on: str


SEARCH_LIMIT = 25
_CANDIDATE_LIMIT = 2000
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,}$")
_IDENTIFIER_LIKE = re.compile(r"^(?=.*\d)[\w.:/|-]+$")


def _patient_ids_of_records(record_ids: Any) -> set[int]:
    return set(
        PatientLink.objects.filter(source_patient_id__in=record_ids).values_list("patient_id", flat=True)
    )


def _keys_patients_query(keys: list[str]) -> QuerySet[PatientLink, int]:
    """The patients of (up to _CANDIDATE_LIMIT) records with any of ``keys``: one statement."""
    records = MatchKey.objects.filter(key__in=keys).order_by().values("source_patient_id")[:_CANDIDATE_LIMIT]
    return (
        PatientLink.objects.filter(source_patient_id__in=records)
        .order_by()
        .values_list("patient_id", flat=True)
    )


def _keys_patients(keys: list[str]) -> set[int]:
    return set(_keys_patients_query(keys))


def _keys_or_contact_patients(key: str, **contact: str) -> set[int]:
    """Patients with a record that has the blocking key, or whose golden record has the contact value,
    in one round trip (a search is mostly round trips)."""
    return set(
        _keys_patients_query([key])
        .union(Patient.objects.filter(**contact).order_by().values_list("pk", flat=True))
        .order_by()
    )


# A search scores up to _CANDIDATE_LIMIT names, and names repeat: fold each and look up its nickname
# groups once per process (bounded), not once per candidate.
@functools.lru_cache(maxsize=65_536)
def _first_name_folded(given_names: str) -> str:
    return ascii_fold(given_names.split(" ")[0]) if given_names else ""


_family_folded = functools.lru_cache(maxsize=65_536)(ascii_fold)


@functools.lru_cache(maxsize=65_536)
def _name_groups(given: str) -> frozenset[str]:
    return frozenset(given_name_groups(given))


_ONE_TYPO_SIMILARITY = 0.8


def _similarity(typed: str, name: str) -> float:
    """Jaro-Winkler similarity, but at least _ONE_TYPO_SIMILARITY one typo apart: Jaro-Winkler alone
    rates short names one typo apart ("Ye" and "Yr", "Ray" and "Rya") as unlike as different names."""
    score = jellyfish.jaro_winkler_similarity(typed, name)
    if (
        score < _ONE_TYPO_SIMILARITY
        and abs(len(typed) - len(name)) <= 1
        and jellyfish.damerau_levenshtein_distance(typed, name) <= 1
    ):
        return _ONE_TYPO_SIMILARITY
    return score


def _name_similarity(query_first: str, query_last: str, given_names: str, family_name: str) -> float:
    given = _first_name_folded(given_names)
    family = _family_folded(family_name)
    family_score = _similarity(query_last, family) if family else 0.0
    if not query_first:
        return max(family_score, _similarity(query_last, given) if given else 0.0)
    if _name_groups(query_first) & _name_groups(given):
        given_score = 1.0
    else:
        given_score = _similarity(query_first, given) if given else 0.0
    return given_score + family_score


def _shown(patients: QuerySet[Patient]) -> QuerySet[Patient]:
    """What a result row shows (the golden record's JSON and provenance are not read for a list)."""
    return patients.only(*_RESULT_COLUMNS).annotate(source_slugs=KeyTransform("sources", "record"))


_RESULT_COLUMNS = ("external_id", "given_names", "family_name", "birth_date", "gender", "city", "is_active")


class _FirstWord(Func):
    """The first space-separated word of a text column, lower case (the first of several given names)."""

    function = "split_part"
    output_field = CharField()

    def __init__(self, expression: Any) -> None:
        super().__init__(Lower(expression), Value(" "), Value(1))

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        text, params = compiler.compile(self.source_expressions[0])
        return (
            f"CASE WHEN instr({text}, ' ') > 0 THEN substr({text}, 1, instr({text}, ' ') - 1) ELSE {text} END",
            (*params, *params, *params, *params),
        )


class _EditDistanceAtMost(Func):
    """Levenshtein distance of a column to a text, exact up to ``limit`` and above it beyond (PostgreSQL's
    fuzzystrmatch ``levenshtein_less_equal``; SQLite gets the same function from ``patients.apps``)."""

    function = "levenshtein_less_equal"
    output_field = IntegerField()

    def __init__(self, expression: Any, text: str, limit: int) -> None:
        super().__init__(expression, Value(text), Value(limit))


_TYPO_EDITS = 2  # one mistyped, missing, extra or swapped letter (a swap is two edits)


def _typo_or_prefix(column: Any, typed: set[str]) -> Q:
    """``column`` is within a typo of one of the ``typed`` spellings or starts with it."""
    condition = Q()
    for text in sorted(typed):
        condition |= Q(LessThanOrEqual(_EditDistanceAtMost(column, text, _TYPO_EDITS), _TYPO_EDITS))
        condition |= Q(StartsWith(column, text))
    return condition


def golden_patient_search(
    *, user: Any, query: str, birth_date: date | None = None, limit: int = SEARCH_LIMIT
) -> list[PatientSearchHit]:
    """Patients ``user`` may see that fit the query: a name (typos, phonetic variants and nicknames
    found), a phone in any format, an e-mail, or any source identifier; optionally a birth date."""
    visible = golden_patients_visible(user)
    text = " ".join(query.split())
    matched_on = "name"
    first = last = ""
    if not text:
        if birth_date is None:
            return []
        candidates = visible.filter(birth_date=birth_date)
        matched_on = "birth date"
    elif "@" in text:
        email = text.lower()
        ids = _keys_or_contact_patients(f"e:{email}", email=email)
        candidates, matched_on = visible.filter(pk__in=ids), "e-mail"
    elif _PHONE_LIKE.match(text) and (phone := phone_to_e164(text)):
        ids = _keys_or_contact_patients(f"p:{phone}", phone=phone)
        candidates, matched_on = visible.filter(pk__in=ids), "phone"
    elif _IDENTIFIER_LIKE.match(text):
        system, _, value = text.rpartition("|")
        found = SourceIdentifier.objects.filter(resource_type="Patient", value=value)
        if system:
            found = found.filter(system=system)
        pairs = set(found.values_list("source_id", "source_record_id")[:50])
        rows = SourcePatient.objects.filter(
            source_id__in={source_id for source_id, _ in pairs},
            source_record_id__in=[record_id for _, record_id in pairs],
        )
        records = [
            pk
            for pk, source_id, record_id in rows.values_list("pk", "source_id", "source_record_id")
            if (source_id, record_id) in pairs
        ]
        candidates, matched_on = visible.filter(pk__in=_patient_ids_of_records(records)), "identifier"
    else:
        # As typed (lower case) and without diacritics: stored names keep theirs.
        family_typed, comma, given_typed = text.lower().partition(",")
        typed = (given_typed.split() + family_typed.split()) if comma else family_typed.split()
        if not typed:  # punctuation alone
            return []
        tokens = [ascii_fold(token) for token in typed]
        first, last = (tokens[0], tokens[-1]) if len(tokens) > 1 else ("", tokens[0])
        # A family name of several words ("da Rocha") is all that follows the first name, or the last word
        # when the words between are middle names.
        families = {last, " ".join(tokens[1:])} if first else {last}
        last_code = phonetic(last)
        if not first:
            condition = Q(family_phonetic=last_code) | Q(given_phonetic=last_code)
            candidates = visible.filter(condition)
        else:
            first_codes = {phonetic(first), *(phonetic(group) for group in given_name_groups(first))}
            first_code = phonetic(first)
            keys = [f"n:{last_code}:{code}" for code in first_codes] + [f"n:{first_code}:{phonetic(last)}"]
            # A typo may break one name's phonetic code: a candidate agrees on one name phonetically (or
            # as a nickname) and is within a typo of the other, or starts with it (the box searches as
            # the user types), so a common first or family name cannot fill the candidate list with
            # people whose other name is nothing like the query's. The family name is compared in the
            # index of given-name codes (patients_patient_given_family), not in thousands of table rows.
            given_agrees = Q(given_phonetic__in=first_codes)
            family_close = _typo_or_prefix(Lower("family_name"), {*families, typed[-1], " ".join(typed[1:])})
            family_typo = Patient.objects.filter(given_agrees & family_close).order_by().values("pk")
            others = (
                Patient.objects.filter(
                    (
                        Q(family_phonetic=last_code)
                        & (given_agrees | _typo_or_prefix(_FirstWord("given_names"), {first, typed[0]}))
                    )
                    | Q(pk__in=_keys_patients(keys))
                    | Q(family_phonetic=first_code, given_phonetic=last_code)  # "Smith John"
                )
                .order_by()
                .values("pk")
            )
            candidates = visible.filter(pk__in=family_typo.union(others, all=True))
    if birth_date is not None:
        candidates = candidates.filter(birth_date=birth_date)
    if matched_on != "name":
        return [
            PatientSearchHit(patient, 2.0, matched_on)
            for patient in _shown(candidates.order_by("family_name", "given_names", "pk"))[:limit]
        ]
    if first:
        # Candidates whose both names agree phonetically come first, so a common name cannot push them out.
        agreement = Case(
            When(Q(family_phonetic=last_code) & Q(given_phonetic__in=first_codes), then=Value(0)),
            default=Value(1),
        )
        candidates = candidates.order_by(agreement, "pk")
    else:
        candidates = candidates.order_by("pk")
    # Names only: the golden record's JSON is read for the few patients shown, not for every candidate.
    scored = []
    for pk, given_names, family_name in candidates.values_list("pk", "given_names", "family_name")[
        :_CANDIDATE_LIMIT
    ]:
        score = max(_name_similarity(first, family, given_names, family_name) for family in families)
        if first:
            score = max(score, _name_similarity(last, first, given_names, family_name))
        if score >= (1.7 if first else 0.85):
            scored.append((-score, family_name, given_names, pk))
    scored.sort()
    shown = scored[:limit]
    shown_patients = _shown(Patient.objects.all()).in_bulk([pk for *_, pk in shown])
    return [PatientSearchHit(shown_patients[pk], -negative, "name") for negative, _, _, pk in shown]


def golden_patient_replaced_ids(patient: Patient) -> list[str]:
    """External ids of the patients merged into this one (they resolve here)."""
    return [str(value) for value in patient.merged_from.order_by("pk").values_list("external_id", flat=True)]


def golden_patients_match(*, user: Any, resource: dict[str, Any]) -> list[tuple[Patient, MatchResult]]:
    """Golden patients a FHIR Patient description may be (the $match operation), best first."""
    if not (user.has_perm("patients.match_patient") and user.has_perm("patients.view_patient")):
        return []
    features = patient_features(patient_resource_normalize(resource))
    results = patients_match(features)
    patients = Patient.objects.in_bulk([result.patient_id for result in results])
    return [(patients[result.patient_id], result) for result in results if result.patient_id in patients]
