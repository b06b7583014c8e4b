"""The database of ``bench/patient_view.py``: about 100,000 golden patients and one with ~2,000 resources.

What goes through the real pipeline (``manage.py ingest``, a Celery worker parsing, validating,
normalizing and storing every payload, and linking each record online against the whole index):

* Synthea clones (``patients.synthetic.iter_synthea_clones``): ``copies`` clones of every shared Synthea
  bundle except the largest, into the source ``synthea-ehr`` (84 x 2 = 168 patients, about 40,000
  resources with the default).
* The big patient: the largest shared Synthea bundle (644 resources) as three sources, ingested one after
  the other so that the second and third are linked online to the golden patient the first created.
  ``metro-hospital-ehr`` has the bundle as it is; ``community-clinic-ehr`` a clone of it (new ids) with
  every date three days later, so its facts stay apart on the page; ``state-hie`` another clone with the
  dates unchanged, so its facts are the hospital's reported twice and the page merges them. The clones'
  Patient resources are replaced by the original's demographics, slightly different: no Synthea id, the
  source's own record number, the phone written another way (clinic) or a newer phone and the unit
  written differently (HIE), no SSN at the clinic.

What is written directly (a million-record pipeline run would take hours on this machine):

* ``bench/mpi_population.py`` draws the rest of the 100,000 people with ``patients.synthetic``
  (realistic names and look-alikes, about 2.4 records a person in ``hospital-ehr``, ``clinic-ehr`` and
  ``crm``, the generator's disagreements) and COPYs their records, blocking keys, golden patients and
  links (from the truth) into the empty database, before anything is ingested.
* Their golden records are then computed by the real survivorship code
  (``patients.matching.golden.patients_golden_recompute``), conflicts included, so that search reads
  golden rows of realistic size.
* Clinical histories: ``histories`` of those people get, on their ``hospital-ehr`` record, a copy of
  the resources of one ingested Synthea clone (INSERT ... SELECT in PostgreSQL: new ids, the patient
  reference rewritten, every other column as stored). Other references inside the copies still name
  the template's resources, and no ``ResourceCoding`` or ``SourceIdentifier`` rows are copied: nothing
  measured reads them for these patients.
"""

import copy
import json
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4"
sys.path.insert(0, str(ROOT))

from bench.support import run_manage  # noqa: E402

JSON = dict[str, Any]

SYNTHEA_SOURCE = ("synthea-ehr", "Synthea EHR", "ehr")
HOSPITAL, CLINIC, EXCHANGE = "metro-hospital-ehr", "community-clinic-ehr", "state-hie"
BIG_PATIENT_SOURCES = (
    (HOSPITAL, "Metro Hospital EHR", "ehr"),
    (CLINIC, "Community Clinic EHR", "ehr"),
    (EXCHANGE, "State Health Information Exchange", "other"),
)
# The source whose only patient is the big patient: how a reused database finds it again.
BIG_PATIENT_MARKER_SOURCE = EXCHANGE
HISTORY_TARGET_SOURCE = "hospital-ehr"  # the generator's hospital EHR (patients.synthetic.records)
_CLINIC_DATE_SHIFT_DAYS = 3
_HISTORIES_PER_STATEMENT = 500
_DATE = re.compile(r'"(\d{4}-\d{2}-\d{2})(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?"')
_SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
SYNTHEA_RECORD_NUMBER_SYSTEM = "http://hospital.smarthealthit.org"


def _is_shared(path: Path) -> bool:
    from patients.synthetic.synthea import is_shared_bundle

    return is_shared_bundle(path)


def patient_bundle_count() -> int:
    return sum(1 for path in SYNTHEA.glob("*.json") if not _is_shared(path))


def largest_bundle() -> Path:
    """The shared Synthea patient bundle with the most entries."""
    sizes = {
        path: len(json.loads(path.read_bytes()).get("entry") or ())
        for path in sorted(SYNTHEA.glob("*.json"))
        if not _is_shared(path)
    }
    return max(sizes, key=lambda path: sizes[path])


def base_clones_write(directory: Path, *, copies: int, seed: int, leave_out: Path) -> int:
    """Clones of every shared bundle but ``leave_out`` (the big patient must have no look-alike)."""
    from patients.synthetic import write_synthea_clones

    with tempfile.TemporaryDirectory(prefix="concord-bench-synthea-") as originals:
        for path in SYNTHEA.glob("*.json"):
            if path != leave_out:
                (Path(originals) / path.name).symlink_to(path)
        counts = write_synthea_clones(Path(originals), directory, copies=copies, seed=seed)
    return counts["patient_bundles"]


def _dates_shifted(bundle: JSON, *, days: int) -> JSON:
    def shifted(match: re.Match[str]) -> str:
        day = date.fromisoformat(match[1]) + timedelta(days=days)
        return f'"{day.isoformat()}{match[2] or ""}"'

    result: JSON = json.loads(_DATE.sub(shifted, json.dumps(bundle, ensure_ascii=False)))
    return result


def _patient_entry(bundle: JSON) -> JSON:
    return next(entry for entry in bundle["entry"] if entry["resource"]["resourceType"] == "Patient")


def _record_number(slug: str, value: str) -> JSON:
    return {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
            "text": "Medical Record Number",
        },
        "system": f"https://{slug}.example.org/mrn",
        "value": value,
    }


def _patient_variant(original: JSON, *, patient_id: str, slug: str, record_number: str) -> JSON:
    """The original's demographics as another source holds them (see the module docstring)."""
    patient = copy.deepcopy(original)
    patient["id"] = patient_id
    ssn = [identifier for identifier in patient["identifier"] if identifier.get("system") == _SSN_SYSTEM]
    phone = next(item for item in patient["telecom"] if item.get("system") == "phone")
    digits = re.sub(r"\D", "", phone["value"])
    if slug == CLINIC:
        patient["identifier"] = [_record_number(slug, record_number)]
        phone["value"] = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    else:
        patient["identifier"] = [_record_number(slug, record_number), *ssn]
        phone["value"] = f"{digits[:3]}-{digits[3:6]}-{(int(digits[6:]) + 4222) % 10_000:04d}"
        address = patient["address"][0]
        address["line"] = [line.replace(" Unit ", ", Apt ") for line in address["line"]]
    return patient


def big_patient_bundles_write(directory: Path, *, seed: int) -> tuple[dict[str, Path], int]:
    """One directory per source of the big patient (its bundle and the shared bundles); resources in all."""
    from patients.synthetic import clone_synthea_bundle

    original_path = largest_bundle()
    original = json.loads(original_path.read_bytes())
    original_patient = _patient_entry(original)["resource"]
    bundles = {
        HOSPITAL: original,
        CLINIC: _dates_shifted(clone_synthea_bundle(original, clone_index=0, seed=seed), days=_CLINIC_DATE_SHIFT_DAYS),
        EXCHANGE: clone_synthea_bundle(original, clone_index=1, seed=seed),
    }  # fmt: skip
    directories = {}
    resources = 0
    for number, (slug, bundle) in enumerate(bundles.items(), start=1):
        if slug != HOSPITAL:
            entry = _patient_entry(bundle)
            entry["resource"] = _patient_variant(
                original_patient,
                patient_id=entry["resource"]["id"],
                slug=slug,
                record_number=f"{number}{zlib.crc32(entry['resource']['id'].encode()) % 10**8:08d}",
            )
        target = directory / slug
        target.mkdir(parents=True)
        for shared in SYNTHEA.glob("*.json"):
            if _is_shared(shared):
                (target / shared.name).symlink_to(shared)
        (target / original_path.name).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
        directories[slug] = target
        resources += len(bundle["entry"])
    return directories, resources


def sources_create() -> None:
    from patients.services import source_ensure

    for slug, name, kind in (SYNTHEA_SOURCE, *BIG_PATIENT_SOURCES):
        source_ensure(actor=None, slug=slug, name=name, kind=kind)


def ingest(env: dict[str, str], slug: str, directory: Path) -> JSON:
    """``manage.py ingest`` of every file in ``directory``; exits when a payload is quarantined."""
    summary: JSON = json.loads(run_manage(env, "ingest", "--source", slug, "--json", str(directory)))
    if summary["payloads"]["quarantined"]:
        sys.exit(f"ingest into {slug}: {summary['payloads']['quarantined']} payloads quarantined")
    return summary


def population_load(database_url: str, *, people: int, seed: int, progress: Callable[[str], None]) -> Any:
    """``people`` generator people (about: the loader stops at a record count, 2.4 records a person)."""
    from bench.mpi_population import HoldOut, population_load

    return population_load(
        database_url,
        records=round(2.4 * people),
        seed=seed,
        hold_out=HoldOut(every=10**9, limit=0),
        progress=progress,
    )


def golden_records_compute(progress: Callable[[str], None]) -> int:
    """Survivorship for the loaded golden patients (the loader leaves their ``record`` empty)."""
    from patients.matching.golden import patients_golden_recompute
    from patients.models import Patient

    ids = list(Patient.objects.filter(record={}).order_by("pk").values_list("pk", flat=True))
    done = 0
    for start in range(0, len(ids), 10_000):
        done += patients_golden_recompute(ids[start : start + 10_000])
        progress(f"golden records: {done:,} of {len(ids):,}")
    return done


def histories_copy(database_url: str, *, histories: int, progress: Callable[[str], None]) -> int:
    """Copy ingested Synthea histories onto ``histories`` generator people's hospital records; rows added."""
    preset = {"created_at", "updated_at", "source_id", "source_record_id", "resource", "payload_id"}
    preset |= {"patient_id", "patient_source_id"}
    with psycopg.connect(database_url) as connection:
        columns = [
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'patients_sourceresource' "
                "AND column_name <> 'id' ORDER BY ordinal_position"
            )
        ]
        copied = [name for name in columns if name not in preset]
        source_id, payload_id = connection.execute(
            "SELECT s.id, min(p.id) FROM patients_source AS s JOIN patients_inboundpayload AS p "
            "ON p.source_id = s.id WHERE s.slug = %s GROUP BY s.id",
            [HISTORY_TARGET_SOURCE],
        ).fetchone() or (None, None)
        if source_id is None:
            sys.exit(f"no source {HISTORY_TARGET_SOURCE!r} with a payload: the population was not loaded")
        connection.execute(
            "CREATE TEMP TABLE bench_history AS "
            "SELECT target.id AS target_id, target.source_record_id AS target_record_id, "
            "template.id AS template_id, target.n FROM "
            "(SELECT id, source_record_id, row_number() OVER (ORDER BY md5(id::text)) AS n "
            " FROM patients_sourcepatient WHERE source_id = %(target)s) AS target "
            "JOIN (SELECT sp.id, row_number() OVER (ORDER BY sp.id) - 1 AS m, count(*) OVER () AS templates "
            " FROM patients_sourcepatient AS sp JOIN patients_source AS s ON s.id = sp.source_id "
            " WHERE s.slug = %(synthea)s) AS template ON template.m = (target.n - 1) %% template.templates "
            "WHERE target.n <= %(histories)s",
            {"target": source_id, "synthea": SYNTHEA_SOURCE[0], "histories": histories},
        )
        statement = sql.SQL(
            "INSERT INTO patients_sourceresource ({preset}, {copied}) "
            "SELECT now(), now(), {source}, new.id, "
            "(CASE WHEN r.resource ? 'subject' THEN "
            "   jsonb_set(r.resource, '{{subject,reference}}', to_jsonb('Patient/' || h.target_record_id)) "
            " WHEN r.resource ? 'patient' THEN "
            "   jsonb_set(r.resource, '{{patient,reference}}', to_jsonb('Patient/' || h.target_record_id)) "
            " ELSE r.resource END) || jsonb_build_object('id', new.id), "
            "{payload}, h.target_id, h.target_record_id, {copied_from} "
            "FROM bench_history AS h JOIN patients_sourceresource AS r ON r.patient_id = h.template_id "
            "CROSS JOIN LATERAL (SELECT md5(h.target_id || ':' || r.resource_type || '/' || r.source_record_id)"
            "::uuid::text AS id) AS new "
            "WHERE h.n > %s AND h.n <= %s"
        ).format(
            preset=sql.SQL(", ").join(
                map(
                    sql.Identifier,
                    ("created_at", "updated_at", "source_id", "source_record_id", "resource", "payload_id"),
                )
            ),
            copied=sql.SQL(", ").join(map(sql.Identifier, ["patient_id", "patient_source_id", *copied])),
            source=sql.Literal(source_id),
            payload=sql.Literal(payload_id),
            copied_from=sql.SQL(", ").join(sql.Identifier("r", name) for name in copied),
        )
        rows = 0
        for start in range(0, histories, _HISTORIES_PER_STATEMENT):
            rows += connection.execute(statement, [start, start + _HISTORIES_PER_STATEMENT]).rowcount
            connection.commit()
            progress(f"histories: {min(histories, start + _HISTORIES_PER_STATEMENT):,} ({rows:,} resources)")
    return rows


def vacuum_analyze(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def worker_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    from bench.ingest import worker_start

    return worker_start(env, workers=2, queue_log=log)


def timed(label: str, seconds: dict[str, float], action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = action()
    seconds[label] = time.perf_counter() - started
    return result
