"""CSV exports (CRM and others) read through a JSON column mapping into FHIR R4 Patient resources.

The mapping format is documented in the README ("CSV column mapping"). Reading is strict: a column the
mapping names but the file lacks, a column the file has but the mapping neither maps nor ignores, an
undecodable byte, or a row whose values cannot be read rejects the file with the line and column, so
nothing is silently dropped. Problem messages name lines and columns, never the values (they are PHI).
"""

import codecs
import csv
import io
import re
from datetime import datetime
from typing import Any

from patients.ingest.entries import JSON, Entry, ParsedPayload, PayloadRejected, Problem

MAPPING_FORMAT = "concord.csv-mapping/1"
SINGLE_COLUMN_FIELDS = (
    "source_record_id", "given", "middle", "family", "sex", "email", "city", "state", "postal_code",
    "preferred_language", "prefix", "suffix",
)  # fmt: skip
KNOWN_FIELDS = (*SINGLE_COLUMN_FIELDS, "birth_date", "address_lines")
PHONE_USES = ("home", "work", "mobile", "temp", "old")
MAX_PROBLEMS = 50
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _mapping_problem(location: str, message: str) -> PayloadRejected:
    return PayloadRejected([Problem(f"mapping.{location}".rstrip("."), message)], kind="mapping")


def mapping_validate(mapping: Any) -> JSON:
    """Check a column mapping; return it with defaults filled in. Raises PayloadRejected naming the key."""
    if not isinstance(mapping, dict):
        raise _mapping_problem("", "the mapping must be a JSON object")
    if mapping.get("format") != MAPPING_FORMAT:
        raise _mapping_problem("format", f"must be {MAPPING_FORMAT!r}")
    if mapping.get("resource", "Patient") != "Patient":
        raise _mapping_problem("resource", "only Patient rows are supported")
    fields = mapping.get("fields")
    if not isinstance(fields, dict):
        raise _mapping_problem("fields", "must be an object mapping patient fields to columns")
    unknown = sorted(set(fields) - set(KNOWN_FIELDS))
    if unknown:
        raise _mapping_problem(
            "fields", f"unknown field(s) {', '.join(unknown)}; known: {', '.join(KNOWN_FIELDS)}"
        )
    if not isinstance(fields.get("source_record_id"), str):
        raise _mapping_problem("fields.source_record_id", "is required: the column holding the record id")
    for name in SINGLE_COLUMN_FIELDS:
        if name in fields and not isinstance(fields[name], str):
            raise _mapping_problem(f"fields.{name}", "must be a column name")
    birth_date = fields.get("birth_date")
    if birth_date is not None:
        if isinstance(birth_date, str):
            birth_date = {"column": birth_date, "format": "%Y-%m-%d"}
        if not isinstance(birth_date, dict) or not isinstance(birth_date.get("column"), str):
            raise _mapping_problem(
                "fields.birth_date", 'must be a column name or {"column": ..., "format": ...}'
            )
        date_format = birth_date.get("format", mapping.get("date_format", "%Y-%m-%d"))
        if not isinstance(date_format, str) or "%" not in date_format:
            raise _mapping_problem("fields.birth_date.format", "must be a strftime format such as %m/%d/%Y")
        fields = {**fields, "birth_date": {"column": birth_date["column"], "format": date_format}}
    lines = fields.get("address_lines", [])
    if isinstance(lines, str):
        lines = [lines]
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise _mapping_problem("fields.address_lines", "must be a list of column names")
    fields = {**fields, "address_lines": lines}
    phones = mapping.get("phones", [])
    if not isinstance(phones, list):
        raise _mapping_problem("phones", "must be a list")
    for position, phone in enumerate(phones):
        if not isinstance(phone, dict) or not isinstance(phone.get("column"), str):
            raise _mapping_problem(f"phones[{position}]", 'must be {"column": ..., "use": ...}')
        if phone.get("use", "home") not in PHONE_USES:
            raise _mapping_problem(f"phones[{position}].use", f"must be one of {', '.join(PHONE_USES)}")
    identifiers = mapping.get("identifiers", [])
    if not isinstance(identifiers, list):
        raise _mapping_problem("identifiers", "must be a list")
    for position, identifier in enumerate(identifiers):
        if not isinstance(identifier, dict) or not all(
            isinstance(identifier.get(key), str) and identifier.get(key) for key in ("column", "system")
        ):
            raise _mapping_problem(f"identifiers[{position}]", 'must be {"column": ..., "system": ...}')
    delimiter = mapping.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise _mapping_problem("delimiter", "must be a single character")
    encoding = mapping.get("encoding", "utf-8")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError) as error:
        raise _mapping_problem("encoding", f"unknown encoding {encoding!r}") from error
    ignore = mapping.get("ignore_columns", [])
    if not isinstance(ignore, list) or not all(isinstance(column, str) for column in ignore):
        raise _mapping_problem("ignore_columns", "must be a list of column names")
    return {
        **mapping,
        "fields": fields,
        "phones": phones,
        "identifiers": identifiers,
        "delimiter": delimiter,
        "encoding": encoding,
        "ignore_columns": ignore,
    }


def mapped_columns(mapping: JSON) -> set[str]:
    fields = mapping["fields"]
    columns = {fields[name] for name in SINGLE_COLUMN_FIELDS if name in fields}
    if "birth_date" in fields:
        columns.add(fields["birth_date"]["column"])
    columns.update(fields["address_lines"])
    columns.update(phone["column"] for phone in mapping["phones"])
    columns.update(identifier["column"] for identifier in mapping["identifiers"])
    return columns


def _decode(body: bytes, encoding: str) -> str:
    if not body.strip():
        raise PayloadRejected([Problem("", "the file is empty")], kind="empty")
    try:
        text = body.decode(
            "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
        )
    except UnicodeDecodeError as error:
        line = body[: error.start].count(b"\n") + 1
        raise PayloadRejected(
            [Problem(f"line {line}", f"byte {error.start} is not valid {encoding}; if the export uses another "
                     'encoding, say so in the mapping ("encoding": "cp1252")')],
            kind="encoding",
        ) from error  # fmt: skip
    return text


def _row_patient(
    row: dict[str, str], mapping: JSON, *, source_slug: str, line: int
) -> tuple[JSON, list[Problem]]:
    fields = mapping["fields"]
    problems: list[Problem] = []

    def value(name: str) -> str:
        column = fields.get(name)
        return (row.get(column) or "").strip() if column else ""

    record_id = value("source_record_id")
    resource: JSON = {"resourceType": "Patient"}
    if _FHIR_ID.match(record_id):
        resource["id"] = record_id
    identifiers = [{"system": f"urn:concord:source:{source_slug}", "value": record_id}]
    for identifier in mapping["identifiers"]:
        identifier_value = (row.get(identifier["column"]) or "").strip()
        if identifier_value:
            rendered: JSON = {"system": identifier["system"], "value": identifier_value}
            if identifier.get("type"):
                rendered["type"] = {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": identifier["type"],
                        }
                    ]
                }
            identifiers.append(rendered)
    resource["identifier"] = identifiers
    name: JSON = {"use": "official"}
    if value("family"):
        name["family"] = value("family")
    given = [part for part in (value("given"), value("middle")) if part]
    if given:
        name["given"] = given
    if value("prefix"):
        name["prefix"] = [value("prefix")]
    if value("suffix"):
        name["suffix"] = [value("suffix")]
    if len(name) > 1:
        resource["name"] = [name]
    telecom = []
    for phone in mapping["phones"]:
        number = (row.get(phone["column"]) or "").strip()
        if number:
            telecom.append({"system": "phone", "value": number, "use": phone.get("use", "home")})
    if value("email"):
        telecom.append({"system": "email", "value": value("email")})
    if telecom:
        resource["telecom"] = telecom
    if value("sex"):
        resource["gender"] = value("sex")  # normalized to FHIR codes by the ingest normalizer
    birth = fields.get("birth_date")
    raw_birth = (row.get(birth["column"]) or "").strip() if birth else ""
    if birth and raw_birth:
        try:
            resource["birthDate"] = datetime.strptime(raw_birth, birth["format"]).date().isoformat()  # noqa: DTZ007
        except ValueError:
            problems.append(
                Problem(
                    f"line {line}, column {birth['column']}",
                    f"value does not match date format {birth['format']}",
                )
            )
    address: JSON = {}
    lines = [(row.get(column) or "").strip() for column in fields["address_lines"]]
    if any(lines):
        address["line"] = [line_text for line_text in lines if line_text]
    for element, field_name in (("city", "city"), ("state", "state"), ("postalCode", "postal_code")):
        if value(field_name):
            address[element] = value(field_name)
    if address:
        resource["address"] = [{"use": "home", **address}]
    if value("preferred_language"):
        resource["communication"] = [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": value("preferred_language")}]},
                "preferred": True,
            }
        ]
    if not record_id:
        problems.append(
            Problem(f"line {line}, column {fields['source_record_id']}", "the record id is empty")
        )
    return resource, problems


def csv_payload_parse(body: bytes, *, mapping: Any, source_slug: str) -> ParsedPayload:
    mapping = mapping_validate(mapping)
    text = _decode(body, mapping["encoding"])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=mapping["delimiter"])
    try:
        header = [column.strip() for column in reader.fieldnames or []]
    except csv.Error as error:
        raise PayloadRejected(
            [Problem("line 1", f"unreadable CSV header: {error}")], kind="malformed"
        ) from error
    if not header:
        raise PayloadRejected([Problem("line 1", "the file has no header row")], kind="malformed")
    reader.fieldnames = header
    expected = mapped_columns(mapping)
    missing = sorted(expected - set(header))
    unknown = sorted(set(header) - expected - set(mapping["ignore_columns"]))
    header_problems = []
    if missing:
        header_problems.append(
            Problem("line 1", f"missing column(s) named in the mapping: {', '.join(missing)}")
        )
    if unknown:
        header_problems.append(
            Problem(
                "line 1", f"unknown column(s) {', '.join(unknown)}: map them or list them in ignore_columns"
            )
        )
    if header_problems:
        raise PayloadRejected(header_problems, kind="columns")

    entries: list[Entry] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                problems.append(
                    Problem(f"line {line}", f"more fields than the {len(header)} columns of the header")
                )
                continue
            if all(not (cell or "").strip() for cell in row.values()):
                continue  # blank line
            resource, row_problems = _row_patient(row, mapping, source_slug=source_slug, line=line)
            problems.extend(row_problems)
            record_id = (row.get(mapping["fields"]["source_record_id"]) or "").strip()
            if record_id in seen and record_id:
                problems.append(Problem(f"line {line}", f"record id repeats line {seen[record_id]}"))
            seen[record_id] = line
            if not row_problems:
                entries.append(
                    Entry("Patient", record_id, resource, location=f"line {line}", index=len(entries))
                )
            if len(problems) >= MAX_PROBLEMS:
                break
    except csv.Error as error:
        problems.append(Problem(f"line {reader.line_num}", f"unreadable CSV: {error}"))
    if problems:
        raise PayloadRejected(problems[:MAX_PROBLEMS], kind="rows")
    if not entries:
        raise PayloadRejected([Problem("", "the file has a header but no rows")], kind="empty")
    return ParsedPayload(entries=entries)
