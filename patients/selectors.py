"""Reads of source systems, their payloads and golden patients, for the pages and the APIs."""

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import jellyfish
from django.db import connections, router
from django.db.models import (
    Count,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from core.audit import AccessContext, phi_rows_read
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
    payloads = InboundPayload.objects.select_related("source")
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
    sources: list[str]  # slugs of the source systems the patient appears in


SEARCH_LIMIT = 25
_CANDIDATE_LIMIT = 2000
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,}$")
_IDENTIFIER_LIKE = re.compile(r"^(?=.*\d)[\w.:/|-]+$")


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


@functools.lru_cache(maxsize=65_536)  # names repeat among the candidates (every Smith's family name)
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


_RESULT_FIELDS = {
    "id",
    "external_id",
    "is_active",
    "given_names",
    "family_name",
    "birth_date",
    "gender",
    "city",
}


@functools.cache
def _result_columns() -> tuple[str, ...]:
    """What a result row shows, in the model's field order (``Model.from_db`` takes them so)."""
    return tuple(field.attname for field in Patient._meta.concrete_fields if field.attname in _RESULT_FIELDS)


# A search runs as the user types, and once the session and the user are read it is a few statements on
# indexes that PostgreSQL answers in well under a millisecond: building them through the ORM cost more
# than running them (about 5 ms of a phone search's 10). So they are written out here, for PostgreSQL and
# the embedded SQLite alike; every value is a parameter.
@functools.cache
def _tables() -> dict[str, str]:
    models = {
        "patient": Patient,
        "link": PatientLink,
        "key": MatchKey,
        "record": SourcePatient,
        "identifier": SourceIdentifier,
    }
    return {name: f'"{model._meta.db_table}"' for name, model in models.items()}


def _connection() -> Any:
    return connections[router.db_for_read(Patient)]


def _vendor() -> str:
    return str(_connection().vendor)


def _first_word_sql(column: str, *, lower: bool = True) -> str:
    """The first space-separated word of a text column, lower case unless asked (the first of several given
    names: ``given_names.split(" ")[0]``)."""
    text = f"lower({column})" if lower else column
    if _vendor() == "sqlite":
        return (
            f"CASE WHEN instr({text}, ' ') > 0 THEN substr({text}, 1, instr({text}, ' ') - 1) ELSE {text} END"
        )
    return f"split_part({text}, ' ', 1)"


def _sources_sql(alias: str) -> str:
    """The golden record's list of source slugs, as JSON text (the record itself is not read for a list)."""
    if _vendor() == "sqlite":
        return f"json_extract({alias}.record, '$.sources') AS sources"
    return f"({alias}.record -> 'sources') AS sources"


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("%s" for _ in values)


def _visibility_sql(user: Any, alias: str) -> tuple[str, list[Any]]:
    """A condition on ``alias`` keeping the patients ``user`` may see: nothing to add for a user with the
    model permission (``golden_patients_visible`` adds none then either), else that queryset as a subquery."""
    if user.has_perm("patients.view_patient"):
        return "", []
    sql, params = golden_patients_visible(user).values("pk").query.sql_with_params()
    return f" AND {alias}.id IN ({sql})", list(params)


# Conditions on a table alias every search adds: ``functools.partial(_narrowing_sql, user, birth_date)``.
Narrowing = Callable[[str], tuple[str, list[Any]]]


def _narrowing_sql(user: Any, birth_date: date | None, alias: str) -> tuple[str, list[Any]]:
    """Conditions on ``alias`` every search adds: the patients ``user`` may see, and the birth date asked."""
    sql, params = _visibility_sql(user, alias)
    if birth_date is not None:
        sql, params = f"{sql} AND {alias}.birth_date = %s", [*params, birth_date]
    return sql, params


_EDIT_DISTANCE_SQL = "levenshtein_less_equal({column}, %s, {limit}) <= {limit}"
_TYPO_EDITS = 2  # one mistyped, missing, extra or swapped letter (a swap is two edits)


def _typo_or_prefix_sql(column: str, typed: set[str]) -> tuple[str, list[Any]]:
    """``column`` is within a typo of one of the ``typed`` spellings or starts with it (PostgreSQL's
    fuzzystrmatch ``levenshtein_less_equal``; SQLite gets the same function from ``patients.apps``)."""
    conditions, params = [], []
    like = _connection().ops.prep_for_like_query
    for text in sorted(typed):
        conditions.append(_EDIT_DISTANCE_SQL.format(column=column, limit=_TYPO_EDITS))
        conditions.append(f"{column} LIKE %s ESCAPE '\\'")
        params += [text, f"{like(text)}%"]
    return "(" + " OR ".join(conditions) + ")", params


def _rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with _connection().cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _shown_rows(
    sql: str, params: Sequence[Any], record: AccessContext | None, order: str = ""
) -> list[tuple[Any, ...]]:
    """The rows of a statement selecting patients to show (``_shown_sql``'s columns first), their access
    recorded with ``record`` by the same statement; ``order``: their order, by column names."""
    if record is None:
        return _rows(sql, params)
    return phi_rows_read(
        sql,
        params,
        patient_ref_column="external_id",
        context=record,
        order_by=f"ORDER BY {order}" if order else "",
    )


def _shown_sql(condition: str) -> str:
    columns = ", ".join(f"p.{column}" for column in _result_columns())
    return (
        f"SELECT {columns}, {_sources_sql('p')} FROM {_tables()['patient']} p "  # noqa: S608
        f"WHERE p.is_active AND {condition}"
    )


def _shown(rows: Sequence[tuple[Any, ...]]) -> dict[int, tuple[Patient, list[str]]]:
    """Patients holding what a result row shows, and their sources, by id, from a ``_shown_sql`` statement."""
    db = router.db_for_read(Patient)
    names = _result_columns()
    # SQLite hands UUIDs and dates back as text: the fields make them values again (PostgreSQL's are).
    fields = {field.attname: field for field in Patient._meta.concrete_fields}
    convert = [fields[name].to_python for name in names] if _vendor() == "sqlite" else None
    found = {}
    for *values, sources in rows:
        if convert is not None:
            values = [to_python(value) for to_python, value in zip(convert, values, strict=True)]
        patient = Patient.from_db(db, names, values)
        found[patient.pk] = (patient, json.loads(sources) if isinstance(sources, str) else (sources or []))
    return found


def _in_sql(column: str, subquery: str) -> str:
    """``column IN (subquery)``; on PostgreSQL as ``= ANY(ARRAY(subquery))``: the subquery runs once and its
    values are looked up in ``column``'s index. As IN, PostgreSQL expected a subquery under a LIMIT of 2,000
    to return 2,000 rows and read a whole table instead (240,000 links, 18-40 ms, for a common name's keys)."""
    if _vendor() == "sqlite":
        return f"{column} IN ({subquery})"
    return f"{column} = ANY(ARRAY({subquery}))"


def _keys_patients_sql(keys: Sequence[str]) -> tuple[str, list[Any]]:
    """The patients of (up to _CANDIDATE_LIMIT) records with any of ``keys``."""
    tables = _tables()
    records = (
        f"SELECT k.source_patient_id FROM {tables['key']} k WHERE k.key IN ({_placeholders(keys)}) "  # noqa: S608
        f"LIMIT {_CANDIDATE_LIMIT}"
    )
    links = f"SELECT l.patient_id FROM {tables['link']} l WHERE {_in_sql('l.source_patient_id', records)}"  # noqa: S608
    return links, list(keys)


def _identifier_patients_sql(system: str, value: str) -> tuple[str, list[Any]]:
    """The patients of the (first 50) records a source identifier with this value (and system) names."""
    tables = _tables()
    system_sql = " AND i.system = %s" if system else ""
    return (
        f"SELECT l.patient_id FROM {tables['link']} l JOIN {tables['record']} r ON r.id = l.source_patient_id "  # noqa: S608
        f"JOIN (SELECT i.source_id, i.source_record_id FROM {tables['identifier']} i "
        f"WHERE i.resource_type = 'Patient' AND i.value = %s{system_sql} LIMIT 50) i "
        "ON i.source_id = r.source_id AND i.source_record_id = r.source_record_id"
    ), [value, *([system] if system else [])]


_CANDIDATE_COLUMNS = "{a}.id, {a}.given_names, {a}.family_name"


def _name_candidates_sql(
    first: str,
    last: str,
    typed: list[str],
    families: set[str],
    narrowing: Narrowing,
) -> tuple[str, list[Any]]:
    """Who a first and a family name may be: (id, given names, family name) of up to _CANDIDATE_LIMIT active
    patients, in the order they are scored.

    Each arm reads the names it returns from the index it searches (``patients_patient_phonetic`` and
    ``patients_patient_given_family`` include them): the rows of hundreds of namesakes are not read. (An OR
    of two index conditions in one arm would be a bitmap scan, which reads the rows.)"""
    patient = _tables()["patient"]
    last_code = phonetic(last)
    first_code = phonetic(first)
    first_codes = sorted({first_code, *(phonetic(group) for group in given_name_groups(first))})
    keys = [f"n:{last_code}:{code}" for code in first_codes] + [f"n:{first_code}:{last_code}"]
    codes = _placeholders(first_codes)
    # A typo may break one name's phonetic code: a candidate agrees on one name phonetically (or as a
    # nickname) and is within a typo of the other, or starts with it (the box searches as the user types),
    # so a common first or family name cannot fill the candidate list with people whose other name is
    # nothing like the query's. The family name is compared in the index of given-name codes
    # (patients_patient_given_family), not in thousands of table rows.
    family_close, family_params = _typo_or_prefix_sql(
        "lower(f.family_name)", {*families, typed[-1], " ".join(typed[1:])}
    )
    given_close, given_params = _typo_or_prefix_sql(_first_word_sql("o.given_names"), {first, typed[0]})
    keys_sql, keys_params = _keys_patients_sql(keys)
    narrow = {alias: narrowing(alias) for alias in ("f", "o", "s", "k")}
    columns = _CANDIDATE_COLUMNS + ", {a}.family_phonetic, {a}.given_phonetic"
    sql = (
        f"SELECT c.id, c.given_names, c.family_name FROM ("  # noqa: S608
        f"SELECT {columns.format(a='f')} FROM {patient} f "
        f"WHERE f.given_phonetic IN ({codes}) AND {family_close} AND f.is_active{narrow['f'][0]} "
        f"UNION SELECT {columns.format(a='o')} FROM {patient} o WHERE o.family_phonetic = %s "
        f"AND (o.given_phonetic IN ({codes}) OR {given_close}) AND o.is_active{narrow['o'][0]} "
        f"UNION SELECT {columns.format(a='s')} FROM {patient} s "  # "Smith John"
        f"WHERE s.family_phonetic = %s AND s.given_phonetic = %s AND s.is_active{narrow['s'][0]} "
        f"UNION SELECT {columns.format(a='k')} FROM {patient} k WHERE {_in_sql('k.id', keys_sql)} "
        f"AND k.is_active{narrow['k'][0]}"
        # Candidates whose both names agree phonetically come first, so a common name cannot push them out.
        f") c ORDER BY CASE WHEN c.family_phonetic = %s AND c.given_phonetic IN ({codes}) THEN 0 ELSE 1 END, "
        f"c.id LIMIT {_CANDIDATE_LIMIT}"
    )
    params = [
        *first_codes, *family_params, *narrow["f"][1],
        last_code, *first_codes, *given_params, *narrow["o"][1],
        first_code, last_code, *narrow["s"][1],
        *keys_params, *narrow["k"][1],
        last_code, *first_codes,
    ]  # fmt: skip
    return sql, params


def golden_patient_search(
    *,
    user: Any,
    query: str,
    birth_date: date | None = None,
    limit: int = SEARCH_LIMIT,
    record: AccessContext | None = None,
) -> list[PatientSearchHit]:
    """Patients ``user`` may see that fit the query: a name (typos, phonetic variants and nicknames
    found), a phone in any format, an e-mail, or any source identifier; optionally a birth date.

    With ``record``, an access audit row is written for each patient found, by the statement that reads
    what is shown of them (``core.audit.phi_rows_read``)."""
    if not (user.is_authenticated and user.is_active):
        return []
    text = " ".join(query.split())
    patients = _tables()["patient"]
    if not text:
        if birth_date is None:
            return []
        ids_sql, ids_params, matched_on = "", [], "birth date"
    elif "@" in text:
        email = text.lower()
        keys_sql, keys_params = _keys_patients_sql([f"e:{email}"])
        ids_sql = f"{keys_sql} UNION ALL SELECT q.id FROM {patients} q WHERE q.email = %s"  # noqa: S608
        ids_params, matched_on = [*keys_params, email], "e-mail"
    elif _PHONE_LIKE.match(text) and (phone := phone_to_e164(text)):
        keys_sql, keys_params = _keys_patients_sql([f"p:{phone}"])
        ids_sql = f"{keys_sql} UNION ALL SELECT q.id FROM {patients} q WHERE q.phone = %s"  # noqa: S608
        ids_params, matched_on = [*keys_params, phone], "phone"
        if _IDENTIFIER_LIKE.match(text):
            # Digits alone may as well be a record number (an MRN of ten digits reads as a phone number).
            identifier_sql, identifier_params = _identifier_patients_sql("", text)
            ids_sql, ids_params = f"{ids_sql} UNION ALL {identifier_sql}", [*ids_params, *identifier_params]
            matched_on = "phone or identifier"
    elif _IDENTIFIER_LIKE.match(text):
        system, _, value = text.rpartition("|")
        ids_sql, ids_params = _identifier_patients_sql(system, value)
        matched_on = "identifier"
    else:
        return _name_search(text, functools.partial(_narrowing_sql, user, birth_date), limit, record)
    narrow, narrow_params = _narrowing_sql(user, birth_date, "p")
    condition = f"p.id IN ({ids_sql})" if ids_sql else "TRUE"
    sql = f"{_shown_sql(condition)}{narrow} ORDER BY p.family_name, p.given_names, p.id LIMIT {int(limit)}"
    rows = _shown_rows(sql, [*ids_params, *narrow_params], record, "family_name, given_names, id")
    shown = _shown(rows)
    return [PatientSearchHit(patient, 2.0, matched_on, sources) for patient, sources in shown.values()]


def _name_search(
    text: str, narrowing: Narrowing, limit: int, record: AccessContext | None
) -> list[PatientSearchHit]:
    # As typed (lower case) and without diacritics: stored names keep theirs.
    family_typed, comma, given_typed = text.lower().partition(",")
    typed = (given_typed.split() + family_typed.split()) if comma else family_typed.split()
    if not typed:  # punctuation alone
        return []
    tokens = [ascii_fold(token) for token in typed]
    first, last = (tokens[0], tokens[-1]) if len(tokens) > 1 else ("", tokens[0])
    if not first:
        return _family_search(last, narrowing, limit, record)
    # A family name of several words ("da Rocha") is all that follows the first name, or the last word
    # when the words between are middle names.
    families = {last, " ".join(tokens[1:])}
    # Names only: the golden record's JSON is read for the few patients shown, not for every candidate.
    rows = _rows(*_name_candidates_sql(first, last, typed, families, narrowing))
    scored = _names_scored(first, last, families, rows)
    scored.sort()
    shown_ids = [pk for *_, pk in scored[:limit]]
    if not shown_ids:
        return []
    shown = _shown(_shown_rows(_shown_sql(f"p.id IN ({_placeholders(shown_ids)})"), shown_ids, record))
    return [
        PatientSearchHit(shown[pk][0], -negative, "name", shown[pk][1])
        for negative, _, _, pk in scored[:limit]
        if pk in shown
    ]


def _names_scored(
    first: str, last: str, families: set[str], rows: Sequence[tuple[Any, ...]]
) -> list[tuple[float, str, str, int]]:
    """(-score, family, given, id) of the candidates for a first and a family name that score well enough."""
    scored = []
    for pk, given_names, family_name in rows:
        score = max(_name_similarity(first, family, given_names, family_name) for family in families)
        score = max(score, _name_similarity(last, first, given_names, family_name))
        if score >= 1.7:
            scored.append((-score, family_name, given_names, pk))
    return scored


# One name typed alone ("smith") is scored against each candidate's family name and first given name, the
# better of the two (``_name_similarity`` without a first name), and a common family name has thousands of
# candidates sharing a few names. So the names are scored, not the candidates: a first statement lists the
# candidates' distinct family names and first given names, and a second ranks the candidates by those
# scores in the database and returns the first ``limit``, with what their rows show. The candidates are
# the same in both (up to _CANDIDATE_LIMIT by id), and so are the scores and the order of
# ``_names_scored``: score, then family name, given names and id as Python compares them (code points:
# the "C" collation).
_FAMILY_CUT = 0.85


def _family_candidates_sql(code: str, narrowing: Narrowing, *, limited: bool) -> tuple[str, list[Any]]:
    """WITH c: (id, given_names, family_name) of the active patients either of whose names has this
    phonetic code, read from the covering indexes; ``limited``, the first _CANDIDATE_LIMIT by id."""
    patient = _tables()["patient"]
    narrow_a, narrow_a_params = narrowing("a")
    narrow_b, narrow_b_params = narrowing("b")
    # The second arm leaves out the first's (no duplicates to remove).
    arms = (
        f"SELECT {_CANDIDATE_COLUMNS.format(a='a')} FROM {patient} a "  # noqa: S608
        f"WHERE a.family_phonetic = %s AND a.is_active{narrow_a} "
        f"UNION ALL SELECT {_CANDIDATE_COLUMNS.format(a='b')} FROM {patient} b "
        f"WHERE b.given_phonetic = %s AND b.family_phonetic <> %s AND b.is_active{narrow_b}"
    )
    if limited:
        arms = f"SELECT * FROM ({arms}) u ORDER BY 1 LIMIT {_CANDIDATE_LIMIT}"  # noqa: S608
    return f"WITH c AS ({arms})", [code, *narrow_a_params, code, code, *narrow_b_params]


def _scores_sql(name: str, scores: dict[str, float]) -> tuple[str, list[Any]]:
    """A named table (name, score) of these scores, for a WITH clause. On PostgreSQL two array parameters,
    so that the statement has one shape, whatever the number of names, and is prepared once."""
    if _vendor() != "sqlite":
        table = f"{name} (name, score) AS (SELECT * FROM unnest(%s::text[], %s::double precision[]))"  # noqa: S608
        return table, [list(scores), list(scores.values())]
    rows: list[tuple[str | None, float | None]] = [*scores.items()] or [(None, None)]
    values = ", ".join("(CAST(%s AS text), CAST(%s AS double precision))" for _ in rows)
    return f"{name} (name, score) AS (VALUES {values})", [value for row in rows for value in row]


def _family_search(
    typed: str, narrowing: Narrowing, limit: int, record: AccessContext | None
) -> list[PatientSearchHit]:
    code = phonetic(typed)
    candidates, params = _family_candidates_sql(code, narrowing, limited=False)
    first_word = _first_word_sql("c.given_names", lower=False)
    # Every candidate's names and how many share each: scoring the names of more than _CANDIDATE_LIMIT
    # candidates scores a few names too many, which rank nobody.
    names = _rows(
        f"{candidates} SELECT 0, c.family_name, count(*) FROM c GROUP BY c.family_name "  # noqa: S608
        f"UNION ALL SELECT 1, {first_word}, count(*) FROM c GROUP BY {first_word}",
        params,
    )
    family_scores: dict[str, float] = {}
    given_scores: dict[str, float] = {}
    for kind, name, _ in names:
        folded = _family_folded(name) if kind == 0 else _first_name_folded(name)
        score = _similarity(typed, folded) if folded else 0.0
        if score >= _FAMILY_CUT:
            (family_scores if kind == 0 else given_scores)[name] = score
    if not (family_scores or given_scores):
        return []
    found = sum(count for kind, _, count in names if kind == 0)
    candidates, params = _family_candidates_sql(code, narrowing, limited=found > _CANDIDATE_LIMIT)
    families_sql, families_params = _scores_sql("f", family_scores)
    givens_sql, givens_params = _scores_sql("g", given_scores)
    collate = " COLLATE BINARY" if _vendor() == "sqlite" else ' COLLATE "C"'
    best = "CASE WHEN coalesce(f.score, 0) >= coalesce(g.score, 0) THEN coalesce(f.score, 0) ELSE g.score END"
    order = "{a}score DESC, {a}family_name{collate}, {a}given_names{collate}, {a}id".format
    order_by_name = order(a="", collate=collate)
    columns = ", ".join(f"p.{column}" for column in _result_columns())
    rows = _shown_rows(
        f"{candidates}, {families_sql}, {givens_sql} SELECT {columns}, {_sources_sql('p')}, r.score FROM ("  # noqa: S608
        f"SELECT c.id, c.family_name, c.given_names, {best} AS score FROM c "
        f"LEFT JOIN f ON f.name = c.family_name LEFT JOIN g ON g.name = {first_word} "
        f"WHERE f.score IS NOT NULL OR g.score IS NOT NULL "
        f"ORDER BY {order_by_name} LIMIT {int(limit)}"
        f") r JOIN {_tables()['patient']} p ON p.id = r.id ORDER BY {order(a='r.', collate=collate)}",
        [*params, *families_params, *givens_params],
        record,
        order_by_name,
    )
    shown = _shown([row[:-1] for row in rows])
    return [
        PatientSearchHit(patient, row[-1], "name", sources)
        for (patient, sources), row in zip(shown.values(), rows, strict=True)
    ]


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
