"""FHIR R4 JSON payloads: a Bundle (transaction, batch, collection, message) or a single resource.

Parsing checks, in order: the bytes are JSON, the JSON is FHIR, every resource validates strictly
against R4, and every reference inside the Bundle resolves. References to other entries
(``urn:uuid:...`` full URLs) and conditional references (``Practitioner?identifier=system|value``)
are rewritten to literal ``Type/id`` references of the source's own ids.
"""

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from patients.fhir import BUNDLE_TYPES_ACCEPTED, resource_validation_problems
from patients.ingest.entries import JSON, Entry, ParsedPayload, PayloadRejected, Problem
from patients.ingest.extract import resource_identifiers

# (resource type, identifier system, identifier value) -> source id, or None when unknown.
IdentifierLookup = Callable[[str, str, str], str | None]

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# An integer literal of 19 digits or more: one beyond 64 bits, which orjson would turn into a float.
# Only what is a JSON number (after ``:``, ``,`` or ``[`` and before ``,``, ``]`` or ``}``), not a run of
# digits inside a string ("Person seed: 6380558951219250530" in every Synthea narrative); a string that
# looks like one anyway only costs the slower parser.
_LONG_INTEGER = re.compile(rb"[:,\[]\s*-?[0-9]{19,}\s*[,\]}]")
# Every digit as b"1", every other byte as b"0": runs of 19 digits are then found by bytes.find, and only
# they are looked at (scanning a 380 KB bundle with the expression above took 7.5 ms, a third of a
# bundle's JSON decoding and about 7% of ingesting it; this takes a fraction of a millisecond).
_DIGIT_MARKS = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_NINETEEN_DIGITS = b"1" * 19
_JSON_WHITESPACE = b" \t\r\n\f\v"  # as \s in the expression above


def _long_integer_found(body: bytes) -> bool:
    """``_LONG_INTEGER.search(body)``, looking only at runs of 19 digits or more."""
    marks = body.translate(_DIGIT_MARKS)
    start = marks.find(_NINETEEN_DIGITS)
    while start != -1:
        end = marks.find(b"0", start)
        end = len(body) if end == -1 else end
        before = start - 1
        if before >= 0 and body[before] == 0x2D:  # "-"
            before -= 1
        while before >= 0 and body[before] in _JSON_WHITESPACE:
            before -= 1
        after = end
        while after < len(body) and body[after] in _JSON_WHITESPACE:
            after += 1
        if before >= 0 and body[before] in b":,[" and after < len(body) and body[after] in b",]}":
            return True
        start = marks.find(_NINETEEN_DIGITS, end)
    return False


_CONDITIONAL = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)\?(?P<query>.+)$")


def json_load(body: bytes) -> Any:
    """Decode JSON bytes, turning every failure into a located problem."""
    if not body.strip():
        raise PayloadRejected([Problem("", "the payload is empty")], kind="empty")
    # The fast parser for the usual case. The standard one reads what it refuses (and words the error
    # precisely), and any payload with an integer of 19 digits or more, which the fast one would round
    # (for decimals both give the same float).
    if not _long_integer_found(body):
        try:
            return orjson.loads(body.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            pass
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PayloadRejected(
            [Problem(f"byte {error.start}", "the payload is not valid UTF-8 (FHIR JSON must be UTF-8)")],
            kind="encoding",
        ) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # A file cut short ends inside a string or before its closing braces.
        truncated = error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip()) - 1
        message = f"malformed JSON: {error.msg}" + (" (the file looks truncated)" if truncated else "")
        raise PayloadRejected(
            [Problem(f"line {error.lineno} column {error.colno}", message)], kind="malformed"
        ) from error


def _content_id(resource: JSON) -> str:
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"sha-{digest[:40]}"


def _source_id(resource: JSON, full_url: str) -> str:
    """The id a resource has in its source: its own id, else its urn:uuid, else one derived from its content."""
    resource_id = resource.get("id")
    if isinstance(resource_id, str) and resource_id:
        return resource_id
    if full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:")
    if full_url and "/" in full_url:
        return full_url.rstrip("/").rsplit("/", 1)[-1]
    return _content_id(resource)


def _rewrite_references(
    node: Any, *, resolve: Callable[[str], str | None], unresolved: list[tuple[str, str]], path: str
) -> None:
    """Rewrite every ``reference`` in place; collect (path, reference) pairs that do not resolve."""
    if not _references_resolved(node, resolve):
        # Again, now keeping track of where each node is (half the cost of the walk): the references
        # rewritten already resolve to themselves, the others are reported with their paths.
        _references_rewrite(node, resolve, unresolved, (None, path))


_CONTAINERS = (dict, list)  # a tuple: isinstance checks it faster than the union dict | list


def _references_resolved(node: Any, resolve: Callable[[str], str | None]) -> bool:
    """Rewrite every reference that resolves in place; False if any does not."""
    resolved = True
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                target = resolve(value)
                if target is None:
                    resolved = False
                else:
                    node[key] = target
            elif isinstance(value, _CONTAINERS) and not _references_resolved(value, resolve):
                resolved = False
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, _CONTAINERS) and not _references_resolved(item, resolve):
                resolved = False
    return resolved


# A trail is (parent trail, key or list position), the root (None, path): a node's path is only written out
# when a reference there does not resolve, not formatted for every element of every resource.
Trail = tuple[Any, str | int]


def _trail_path(trail: Trail) -> str:
    parts = []
    parent: Trail | None = trail
    while parent is not None:
        parent, part = parent
        if parent is None:
            parts.append(str(part))
        else:
            parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(reversed(parts))


def _references_rewrite(
    node: Any, resolve: Callable[[str], str | None], unresolved: list[tuple[str, str]], trail: Trail
) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                target = resolve(value)
                if target is None:
                    unresolved.append((_trail_path(trail) + ".reference", value))
                else:
                    node[key] = target
            elif isinstance(value, dict | list):
                _references_rewrite(value, resolve, unresolved, (trail, key))
    elif isinstance(node, list):
        for position, item in enumerate(node):
            if isinstance(item, dict | list):
                _references_rewrite(item, resolve, unresolved, (trail, position))


class _ReferenceResolver:
    def __init__(self, entries: list[Entry], lookup: IdentifierLookup) -> None:
        self.by_full_url = {
            entry.full_url: f"{entry.resource_type}/{entry.source_id}" for entry in entries if entry.full_url
        }
        self.by_identifier: dict[tuple[str, str, str], str] = {}
        for entry in entries:
            for system, value in resource_identifiers(entry.resource):
                self.by_identifier[(entry.resource_type, system, value)] = entry.source_id
        self.lookup = lookup

    def __call__(self, reference: str) -> str | None:
        if reference.startswith("#"):
            return reference  # a contained resource
        if reference.startswith(("urn:uuid:", "urn:oid:")):
            return self.by_full_url.get(reference)
        conditional = _CONDITIONAL.match(reference)
        if conditional is not None:
            return self._conditional(conditional.group("type"), conditional.group("query"))
        if reference in self.by_full_url:
            return self.by_full_url[reference]
        return reference  # a literal reference (Type/id or absolute URL) stays as the source wrote it

    def _conditional(self, resource_type: str, query: str) -> str | None:
        parameters = parse_qs(query)
        identifiers = parameters.get("identifier", [])
        if len(identifiers) != 1 or len(parameters) != 1:
            return None  # only identifier=system|value is supported
        system, _, value = identifiers[0].rpartition("|")
        source_id = self.by_identifier.get((resource_type, system, value)) or self.lookup(
            resource_type, system, value
        )
        return f"{resource_type}/{source_id}" if source_id else None


def _entry_from_bundle(position: int, raw_entry: Any) -> tuple[Entry | None, list[Problem]]:
    location = f"Bundle.entry[{position}]"
    if not isinstance(raw_entry, dict) or not isinstance(raw_entry.get("resource"), dict):
        return None, [Problem(location, "entry has no resource")]
    resource = raw_entry["resource"]
    request = raw_entry.get("request")
    if not isinstance(request, dict):
        request = {}
    method = str(request.get("method") or "POST").upper()
    if method not in {"POST", "PUT"}:
        return None, [Problem(f"{location}.request.method", f"{method} is not supported; send POST or PUT")]
    full_url = str(raw_entry.get("fullUrl") or "")
    problems = [
        Problem(path, message) for path, message in resource_validation_problems(resource, path=location)
    ]
    if problems:
        return None, problems
    source_id = _source_id(resource, full_url)
    if not _FHIR_ID.match(source_id):
        return None, [Problem(f"{location}.resource.id", "id is not a valid FHIR id")]
    return Entry(
        resource_type=resource["resourceType"],
        source_id=source_id,
        resource=resource,
        location=location,
        index=position,
        full_url=full_url,
        method=method,
    ), []


def fhir_payload_parse(body: bytes, *, lookup: IdentifierLookup, expected_type: str = "") -> ParsedPayload:
    """Parse a FHIR payload; ``expected_type`` is the type named by the URL it was posted to, if any."""
    return fhir_document_parse(json_load(body), lookup=lookup, expected_type=expected_type)


def fhir_document_parse(document: Any, *, lookup: IdentifierLookup, expected_type: str = "") -> ParsedPayload:
    """Validate and resolve a decoded FHIR document (a Bundle or one resource) into entries to store.

    Other connectors (HL7 v2, pulls) map their input to a FHIR document and hand it over here.
    """
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        raise PayloadRejected(
            [Problem("", "this JSON is not FHIR: it has no resourceType at the top level")], kind="not-fhir"
        )
    if expected_type and document["resourceType"] != expected_type:
        raise PayloadRejected(
            [
                Problem(
                    "resourceType",
                    f"the body is a {document['resourceType']} but was posted to {expected_type}",
                )
            ],
            kind="type-mismatch",
        )
    if document["resourceType"] != "Bundle":
        return _single_resource(document, lookup=lookup)
    return _bundle(document, lookup=lookup)


def _single_resource(resource: JSON, *, lookup: IdentifierLookup) -> ParsedPayload:
    problems = [Problem(path, message) for path, message in resource_validation_problems(resource, path="")]
    if problems:
        raise PayloadRejected(problems)
    source_id = _source_id(resource, "")
    entry = Entry(resource_type=resource["resourceType"], source_id=source_id, resource=resource, location="")
    _resolve_all([entry], lookup=lookup, batch=False)
    return ParsedPayload(entries=[entry], entry_count=1)


def _bundle(bundle: JSON, *, lookup: IdentifierLookup) -> ParsedPayload:
    bundle_type = bundle.get("type")
    if bundle_type not in BUNDLE_TYPES_ACCEPTED:
        raise PayloadRejected(
            [Problem("Bundle.type", f"Bundle type {bundle_type!r} is not accepted; send one of "
                     + ", ".join(BUNDLE_TYPES_ACCEPTED))],
            kind="bundle-type",
        )  # fmt: skip
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise PayloadRejected([Problem("Bundle.entry", "entry must be a list")])
    batch = bundle_type == "batch"
    entries: list[Entry] = []
    entry_problems: dict[int, list[Problem]] = {}
    for position, raw_entry in enumerate(raw_entries):
        entry, problems = _entry_from_bundle(position, raw_entry)
        if problems:
            entry_problems[position] = problems
        elif entry is not None:
            entries.append(entry)
    if entry_problems and not batch:
        raise PayloadRejected([problem for problems in entry_problems.values() for problem in problems])
    entry_problems.update(_resolve_all(entries, lookup=lookup, batch=batch))
    if entry_problems and not batch:
        raise PayloadRejected(
            [problem for problems in entry_problems.values() for problem in problems],
            kind="unresolved-reference",
        )
    failed = set(entry_problems)
    return ParsedPayload(
        entries=[entry for entry in entries if entry.index not in failed],
        bundle_type=str(bundle_type),
        entry_count=len(raw_entries),
        entry_problems=entry_problems,
    )


def _resolve_all(entries: list[Entry], *, lookup: IdentifierLookup, batch: bool) -> dict[int, list[Problem]]:
    resolver = _ReferenceResolver(entries, lookup)
    problems: dict[int, list[Problem]] = {}
    for entry in entries:
        unresolved: list[tuple[str, str]] = []
        _rewrite_references(
            entry.resource,
            resolve=resolver,
            unresolved=unresolved,
            path=f"{entry.location}.resource".lstrip("."),
        )
        if unresolved:
            problems[entry.index if entry.index is not None else -1] = [
                Problem(path, f"reference {reference!r} does not resolve to an entry of this Bundle "
                        "or a known resource of this source")
                for path, reference in unresolved
            ]  # fmt: skip
    if problems and not batch and not any(entry.index is not None for entry in entries):
        raise PayloadRejected([p for found in problems.values() for p in found], kind="unresolved-reference")
    return problems
