"""A large synthetic patient index written straight into PostgreSQL, for the patient index speed benchmarks.

Ingesting a million records through the pipeline would take hours, so the rows that ingestion and online
linking would have stored are written with COPY instead:

* People and their records come from ``patients.synthetic``: ``PersonMaker`` draws people and the
  look-alikes a population has (twins, common names, Jr/Sr, households, the Maria Garcias); each person
  gets a hospital EHR record, a clinic EHR record (60%) and a CRM row (80%), about 2.4 records a person;
  the generator's disagreements damage them (typos, nicknames, married names, moves, new phones, swapped
  day and month, missing fields, ...). People are drawn in batches of ``BATCH_PEOPLE``, a seed each, in
  worker processes; medical record numbers and CRM customer numbers are numbered across batches and
  e-mail domains carry the batch, so that no two people share them by accident.
* EHR records are the generator's FHIR Patient resources, CRM rows go through the CSV importer's
  row-to-Patient mapping; both are normalized as ingestion normalizes them (names, E.164 phones,
  addresses), and their matching features and blocking keys computed by ``patients.matching.features``.
* Rows: one ``Source`` and one ``InboundPayload`` per source, a ``SourcePatient`` per record (with
  ``match_features``), its ``MatchKey`` rows, and a golden ``Patient`` per person with a ``PatientLink``
  per record taken from the truth: a person's first record (in storage order) as NO_MATCH, the others
  as MATCH, as online linking leaves them when it gets every record right. A golden patient gets its
  first record's demographic columns and no survivorship record (``record`` stays empty).
* Foreign keys are not checked while loading (the rows are consistent by construction) and secondary
  indexes are built after the load, the usual way to bulk-load PostgreSQL. Columns are read from the
  models (their defaults fill what is not set here), so import this module after ``django.setup()``.
"""

import dataclasses
import hashlib
import multiprocessing
import random
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.pool import AsyncResult
from typing import Any

import orjson
import psycopg
from django.db import models
from psycopg import sql

from patients.ingest.csv_input import _row_patient, mapping_validate
from patients.ingest.extract import patient_columns
from patients.matching.features import FEATURES_VERSION, blocking_keys, patient_features, phonetic
from patients.models import InboundPayload, MatchKey, Patient, PatientLink, Source, SourcePatient
from patients.normalize import patient_resource_normalize
from patients.synthetic.csv_export import CRM_MAPPING, crm_row
from patients.synthetic.disagreements import apply_person_events, apply_record_damage
from patients.synthetic.fhir_bundles import new_uuid, patient_resource
from patients.synthetic.people import _AREA_CODES, Person, PersonMaker
from patients.synthetic.population import (
    CLINIC_PRESENCE_RATE,
    CRM_KNOWS_HOSPITAL_MRN_RATE,
    CRM_PRESENCE_RATE,
    _drafts,
)
from patients.synthetic.records import CLINIC_EHR, CRM, HOSPITAL_EHR, SOURCES, RecordView

JSON = dict[str, Any]

BATCH_PEOPLE = 5_000
# Generated batches waiting for the loader, at most: bounds memory when generating outpaces COPY.
_BATCHES_AHEAD = 4
# People written per COPY round (one transaction).
_WRITE_PEOPLE = 10_000
_SOURCE_KINDS = {HOSPITAL_EHR: "ehr", CLINIC_EHR: "ehr", CRM: "crm"}
_LOADED_MODELS = (Source, InboundPayload, SourcePatient, MatchKey, Patient, PatientLink)
_LOADED_TABLES = tuple(model._meta.db_table for model in _LOADED_MODELS)
_CRM_MAPPING = mapping_validate(CRM_MAPPING)

# A record of a known person kept out of the load, and the one record of a person kept out entirely.
KNOWN_PERSON = "known person"
NEW_PERSON = "new person"


@dataclass(frozen=True, slots=True)
class GeneratedRecord:
    """One source record as ingestion would store it: normalized resource, columns, features, keys."""

    person: int  # person number, from 1 across the whole population; also their golden patient's id
    source: str
    source_record_id: str
    resource_text: str  # canonical JSON (sorted keys), as ingestion hashes it
    content_sha256: str
    columns: JSON  # ``patient_columns`` of the resource
    features_text: str
    keys: tuple[str, ...]

    @property
    def resource(self) -> JSON:
        return dict(orjson.loads(self.resource_text))


class _LargePopulationMaker(PersonMaker):
    """``PersonMaker`` with room for a million people's phone numbers and e-mail addresses.

    The generator draws phones from the 555 exchange, 10,000 numbers per area code, which a few hundred
    thousand people exhaust (it would then loop for ever); here the exchange varies too, and the numbers
    never leave the benchmark database. A batch's maker only knows its own e-mail addresses, so the batch
    goes into the domain (a subdomain of a reserved example domain) to keep addresses unique.
    """

    def __init__(self, *, seed: int, batch: int) -> None:
        super().__init__(seed=seed)
        self.batch = batch

    def phone(self) -> str:
        while True:
            area = self.randomness.choice(_AREA_CODES)
            number = f"{area}{self.randomness.randrange(200, 1000)}{self.randomness.randrange(10_000):04d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def email(self, *, given: str, family: str) -> str:
        local, _, domain = super().email(given=given, family=family).partition("@")
        return f"{local}@b{self.batch}.{domain}"


def record_generate(*, person: int, source: str, source_record_id: str, resource: JSON) -> GeneratedRecord:
    normalized = patient_resource_normalize(resource)
    text = orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS).decode()
    features = {**patient_features(normalized), "version": FEATURES_VERSION}
    return GeneratedRecord(
        person=person,
        source=source,
        source_record_id=source_record_id,
        resource_text=text,
        content_sha256=hashlib.sha256(text.encode()).hexdigest(),
        columns=patient_columns(normalized),
        features_text=orjson.dumps(features).decode(),
        keys=tuple(blocking_keys(features)),
    )


def _views(person: Person, *, number: int, randomness: random.Random) -> dict[str, RecordView]:
    sources = [HOSPITAL_EHR]
    if randomness.random() < CLINIC_PRESENCE_RATE:
        sources.append(CLINIC_EHR)
    if randomness.random() < CRM_PRESENCE_RATE:
        sources.append(CRM)
    views = {}
    for source in sources:
        record_id = f"{10_000_000 + number}" if source == CRM else new_uuid(randomness)
        views[source] = RecordView.of(person, source=source, source_record_id=record_id)
    if CRM in views and randomness.random() < CRM_KNOWS_HOSPITAL_MRN_RATE:
        views[CRM].known_hospital_mrn = person.medical_record_numbers[HOSPITAL_EHR]
    return views


def batch_generate(seed: int, batch: int, first_person: int, people: int) -> list[list[GeneratedRecord]]:
    """The records of ``people`` people numbered from ``first_person``, one list per person.

    The steps of ``generate_population``, without the clinical resources of the EHR bundles.
    """
    maker = _LargePopulationMaker(seed=seed * 100_000 + batch, batch=batch)
    randomness = random.Random(f"bench-mpi:{seed}:{batch}:records")
    transposition_randomness = random.Random(f"bench-mpi:{seed}:{batch}:transpositions")
    drafts, _ = _drafts(maker=maker, people=people)
    order = list(range(len(drafts)))
    randomness.shuffle(order)  # person numbers say nothing about who looks like whom
    found = []
    for position, draft in enumerate(order):
        number = first_person + position
        numbers = {HOSPITAL_EHR: f"{10_000_000 + number}", CLINIC_EHR: f"C{1_000_000 + number}"}
        person = dataclasses.replace(
            drafts[draft], person_id=f"P{number:07d}", medical_record_numbers=numbers
        )
        views = _views(person, number=number, randomness=randomness)
        apply_person_events(person, views=views, randomness=randomness, maker=maker)
        records = []
        for view in views.values():
            apply_record_damage(
                view, randomness=randomness, transposition_randomness=transposition_randomness
            )
            if view.source == CRM:
                resource, _ = _row_patient(crm_row(view), _CRM_MAPPING, source_slug=CRM, line=0)
            else:
                resource = patient_resource(view, resource_id=view.source_record_id)
            records.append(
                record_generate(
                    person=number,
                    source=view.source,
                    source_record_id=view.source_record_id,
                    resource=resource,
                )
            )
        found.append(records)
    return found


def people_generate(*, seed: int, workers: int = 2) -> Generator[list[GeneratedRecord]]:
    """Each person's records, person by person and without end, drawn in ``workers`` processes."""
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        pending: list[AsyncResult[list[list[GeneratedRecord]]]] = []
        batch = 0
        while True:
            while len(pending) < _BATCHES_AHEAD:
                first = 1 + batch * BATCH_PEOPLE
                pending.append(pool.apply_async(batch_generate, (seed, batch, first, BATCH_PEOPLE)))
                batch += 1
            yield from pending.pop(0).get()


@dataclass(frozen=True)
class HoldOut:
    """Which people's records stay out of the load, to arrive later as new records."""

    every: int  # one person of each kind in this many
    limit: int  # records held out of each kind, at most

    def kind_of(self, person: int) -> str:
        if person % self.every == 0:
            return KNOWN_PERSON
        if person % self.every == self.every // 2:
            return NEW_PERSON
        return ""


@dataclass
class LoadResult:
    records: int = 0
    people: int = 0
    match_keys: int = 0
    held_out: list[tuple[str, GeneratedRecord]] = dataclasses.field(default_factory=list)  # (kind, record)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def _secondary_indexes(connection: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(name, definition) of the loaded tables' indexes that no constraint owns."""
    return connection.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes AS i WHERE i.schemaname = 'public' "
        "AND i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c "
        "WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass)",
        [list(_LOADED_TABLES)],
    ).fetchall()


class _Table:
    """A model's table for COPY: every concrete column, the model's default where a row gives no value.

    Read from the model, so that a column a migration adds needs no change here.
    """

    def __init__(self, model: type[models.Model], *, generated: tuple[str, ...] = ()) -> None:
        fields: list[Any] = [field for field in model._meta.concrete_fields if field.attname not in generated]
        self.name = model._meta.db_table
        self.columns = tuple(field.column for field in fields)
        self.attnames = tuple(field.attname for field in fields)
        self.defaults = {
            field.attname: orjson.dumps(field.get_default()).decode()
            if isinstance(field, models.JSONField)
            else field.get_default()
            for field in fields
        }
        self.rows: list[tuple[Any, ...]] = []

    def add(self, **values: Any) -> None:
        """A row from attribute names (``source_id``); JSON columns take JSON text."""
        self.rows.append(tuple(values.get(name, self.defaults[name]) for name in self.attnames))

    def copy(self, connection: psycopg.Connection[Any]) -> None:
        statement = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
            table=sql.Identifier(self.name), columns=sql.SQL(", ").join(map(sql.Identifier, self.columns))
        )
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in self.rows:
                copy.write_row(row)
        self.rows = []


def _sources_create(
    connection: psycopg.Connection[Any], now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """One Source and one InboundPayload per source; their ids by source slug."""
    sources = _Table(Source)
    payloads = _Table(InboundPayload)
    source_ids, payload_ids = {}, {}
    for number, slug in enumerate(SOURCES, start=1):
        source_ids[slug] = payload_ids[slug] = number
        sources.add(
            id=number,
            external_id=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            slug=slug,
            name=slug.replace("-", " ").title(),
            kind=_SOURCE_KINDS[slug],
            jurisdiction="MA",
        )
        body = f"bench: records of {slug} loaded directly".encode()
        payloads.add(
            id=number,
            external_id=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            source_id=number,
            received_at=now,
            last_received_at=now,
            channel="file",
            format="csv" if slug == CRM else "fhir",
            origin="bench",
            body=body,
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            status="accepted",
            attempts=1,
            processed_at=now,
        )
    sources.copy(connection)
    payloads.copy(connection)
    return source_ids, payload_ids


def _rows_write(
    connection: psycopg.Connection[Any],
    people: list[list[GeneratedRecord]],
    *,
    first_id: int,
    source_ids: dict[str, int],
    payload_ids: dict[str, int],
    now: datetime,
) -> tuple[int, int]:
    """COPY the records of ``people`` (shuffled, as sources deliver them), their keys, patients and links."""
    records = [record for person in people for record in person]
    random.Random(first_id).shuffle(records)  # a person's records are not stored one after the other
    source_patients = _Table(SourcePatient)
    keys = _Table(MatchKey, generated=("id",))
    patients = _Table(Patient)
    links = _Table(PatientLink, generated=("id",))
    seen: set[int] = set()
    for record_id, record in enumerate(records, start=first_id):
        columns = {name: value for name, value in record.columns.items() if name in source_patients.defaults}
        source_patients.add(
            **columns,
            id=record_id,
            external_id=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            source_id=source_ids[record.source],
            source_record_id=record.source_record_id,
            content_sha256=record.content_sha256,
            resource=record.resource_text,
            payload_id=payload_ids[record.source],
            match_features=record.features_text,
        )
        for key in record.keys:
            keys.add(source_patient_id=record_id, key=key)
        first = record.person not in seen
        if first:
            seen.add(record.person)
            features = orjson.loads(record.features_text)
            patients.add(
                **{name: value for name, value in columns.items() if name in patients.defaults},
                id=record.person,
                external_id=uuid.uuid4(),
                created_at=now,
                updated_at=now,
                city=features["city"],
                family_phonetic=phonetic(columns["family_name"])[:40],
                given_phonetic=phonetic(features["given"])[:40],
            )
        links.add(
            external_id=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            source_patient_id=record_id,
            patient_id=record.person,
            state="NO_MATCH" if first else "MATCH",
            origin="AUTO",
            reason="bench load: first record of its person" if first else "bench load: same person (truth)",
        )
    key_count = len(keys.rows)
    for table in (source_patients, keys, patients, links):
        table.copy(connection)
    return len(records), key_count


def population_load(
    database_url: str,
    *,
    records: int,
    seed: int,
    hold_out: HoldOut,
    workers: int = 2,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """Draw people until ``records`` records are loaded into a migrated, empty database; hold some out."""
    result = LoadResult()
    now = datetime.now().astimezone()
    held = dict.fromkeys((KNOWN_PERSON, NEW_PERSON), 0)
    choice = random.Random(f"bench-mpi:{seed}:hold-out")
    started = time.perf_counter()
    with psycopg.connect(database_url) as connection:
        # The rows reference each other consistently by construction: no foreign key checks per row.
        connection.execute("SET session_replication_role = replica")
        connection.execute("SET maintenance_work_mem = '1GB'")
        indexes = _secondary_indexes(connection)
        for name, _ in indexes:
            connection.execute(sql.SQL("DROP INDEX {name}").format(name=sql.Identifier(name)))
        source_ids, payload_ids = _sources_create(connection, now)
        connection.commit()
        pending: list[list[GeneratedRecord]] = []
        pending_records = 0
        people = people_generate(seed=seed, workers=workers)
        for person_records in people:
            kind = hold_out.kind_of(person_records[0].person)
            if kind == KNOWN_PERSON and len(person_records) > 1 and held[kind] < hold_out.limit:
                person_records = list(person_records)
                result.held_out.append((kind, person_records.pop(choice.randrange(len(person_records)))))
                held[kind] += 1
            elif kind == NEW_PERSON and held[kind] < hold_out.limit:
                result.held_out.append((kind, person_records[0]))
                held[kind] += 1
                continue
            person_records = person_records[: records - result.records - pending_records]
            pending.append(person_records)
            pending_records += len(person_records)
            result.people += 1
            if len(pending) < _WRITE_PEOPLE and result.records + pending_records < records:
                continue
            written, keys = _rows_write(
                connection,
                pending,
                first_id=result.records + 1,
                source_ids=source_ids,
                payload_ids=payload_ids,
                now=now,
            )
            connection.commit()
            result.records += written
            result.match_keys += keys
            pending, pending_records = [], 0
            if progress:
                progress(f"loaded {result.records:,} records")
            if result.records >= records:
                break
        people.close()  # stops the worker processes
        result.seconds["draw and COPY"] = time.perf_counter() - started
        started = time.perf_counter()
        for _, definition in indexes:
            connection.execute(definition.encode())  # PostgreSQL's own definition of the index
        for table in _LOADED_TABLES:
            connection.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({name}, 'id'), (SELECT max(id) FROM {table}))")
                .format(name=sql.Literal(table), table=sql.Identifier(table))
            )  # fmt: skip
        connection.commit()
        result.seconds["secondary indexes"] = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    result.seconds["VACUUM ANALYZE"] = time.perf_counter() - started
    return result
