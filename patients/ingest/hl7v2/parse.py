"""HL7 v2 bytes to messages: decoding, segments, batches, separators, escapes.

A small parser of its own rather than python-hl7: problems must name the message, segment and field
they concern, each message of a batch keeps its own separators, and values are unescaped only once
split, so that an escaped separator never splits a value.
"""

import logging
import re
from dataclasses import dataclass, field

from patients.ingest.entries import PayloadRejected, Problem

logger = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2")
BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_HEX_ESCAPE = re.compile(r"^X([0-9A-Fa-f]{2})+$")


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"


def separators_read(header: str) -> Separators | None:
    """The separators an MSH/FHS/BHS segment declares, or None when it declares none usable."""
    if len(header) < 5:
        return None
    field_separator = header[3]
    encoding = header[4:].split(field_separator, 1)[0]
    if field_separator.isalnum() or field_separator.isspace() or len(encoding) < 2:
        return None
    defaults = Separators()
    characters = [*encoding[:4]]
    component, repetition = characters[0], characters[1]
    escape = characters[2] if len(characters) > 2 else defaults.escape
    subcomponent = characters[3] if len(characters) > 3 else defaults.subcomponent
    if len({field_separator, component, repetition, escape, subcomponent}) != 5:
        return None
    return Separators(
        field=field_separator,
        component=component,
        repetition=repetition,
        escape=escape,
        subcomponent=subcomponent,
    )


def unescape(text: str, separators: Separators) -> str:
    """Replace the HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\ \\.br\\) in one value."""
    escape = separators.escape
    if escape not in text:
        return text
    replacements = {
        "F": separators.field,
        "S": separators.component,
        "T": separators.subcomponent,
        "R": separators.repetition,
        "E": escape,
        ".br": "\n",
    }
    result = []
    position = 0
    while position < len(text):
        character = text[position]
        end = text.find(escape, position + 1) if character == escape else -1
        if end == -1:
            result.append(character)
            position += 1
            continue
        sequence = text[position + 1 : end]
        if sequence in replacements:
            result.append(replacements[sequence])
        elif _HEX_ESCAPE.match(sequence):
            raw = bytes.fromhex(sequence[1:])
            try:
                result.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                result.append(raw.decode("latin-1"))
        elif sequence in {"H", "N"} or sequence.startswith((".", "C", "M", "Z")):
            pass  # highlighting, formatting and character-set switches carry no text
        else:
            result.append(text[position : end + 1])  # not an escape sequence: keep it as written
        position = end + 1
    return "".join(result)


@dataclass(frozen=True)
class Composite:
    """One repetition of a field: components of subcomponents, already unescaped."""

    components: tuple[tuple[str, ...], ...]

    def get(self, component: int = 1, subcomponent: int = 1) -> str:
        if component > len(self.components):
            return ""
        subcomponents = self.components[component - 1]
        return subcomponents[subcomponent - 1].strip() if subcomponent <= len(subcomponents) else ""

    def text(self) -> str:
        """The whole value with its components joined: for free-text types that never hold components."""
        return "^".join("&".join(subs) for subs in self.components)

    def is_empty(self) -> bool:
        return not any(part.strip() for subs in self.components for part in subs)


@dataclass
class Segment:
    name: str
    position: int  # 1-based within its message
    fields: list[str]  # fields[n] is the raw text of field n (fields[0] is the segment id)
    separators: Separators

    def raw(self, number: int) -> str:
        return self.fields[number] if number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[Composite]:
        text = self.raw(number)
        if not text or (self.name == "MSH" and number in {1, 2}):
            return [Composite(((text,),))] if text else []
        separators = self.separators
        found = []
        for repetition in text.split(separators.repetition):
            components = tuple(
                # '""' is HL7's explicit null ("no value"): it carries no data to map.
                tuple(
                    "" if part == '""' else unescape(part, separators)
                    for part in component.split(separators.subcomponent)
                )
                for component in repetition.split(separators.component)
            )
            composite = Composite(components)
            if not composite.is_empty():
                found.append(composite)
        return found

    def first(self, number: int) -> Composite:
        found = self.repetitions(number)
        return found[0] if found else Composite(())

    def get(self, number: int, component: int = 1, subcomponent: int = 1) -> str:
        return self.first(number).get(component, subcomponent)

    def label(self, number: int | None = None) -> str:
        where = f"segment {self.position} ({self.name})"
        return f"{where}, field {self.name}-{number}" if number is not None else where


@dataclass
class Message:
    number: int  # 1-based within the payload
    segments: list[Segment]
    separators: Separators
    problems: list[Problem] = field(default_factory=list)

    @property
    def header(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.name == name]

    def one(self, name: str) -> Segment | None:
        found = self.all(name)
        return found[0] if found else None

    def location(self, segment: Segment | None = None, number: int | None = None) -> str:
        where = f"message {self.number}"
        return f"{where}, {segment.label(number)}" if segment is not None else where


def text_decode(body: bytes) -> str:
    """UTF-8 with or without a byte order mark; latin-1 only when the bytes are not UTF-8."""
    body = body.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        # Older interfaces still send ISO 8859-1; every byte string decodes as latin-1, so this never fails.
        logger.info("HL7 v2 payload is not UTF-8: decoded as latin-1")
        return body.decode("latin-1")


def lines_split(text: str) -> list[str]:
    """Segments end with CR (the standard), LF or CRLF; blank lines and trailing padding are dropped."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line.rstrip(" \t\x00\x1a") for line in lines if line.strip(" \t\x00\x1a\x0b\x1c")]


def _segment(line: str, *, position: int, separators: Separators) -> Segment:
    name = line[:3]
    parts = line.split(separators.field)
    # MSH-1 is the field separator itself, so the first split part of a header is MSH-2.
    fields = [name, separators.field, *parts[1:]] if name in {"MSH", "FHS", "BHS"} else parts
    return Segment(name=name, position=position, fields=fields, separators=separators)


def messages_split(body: bytes) -> list[Message]:
    """Split a payload (one message or an FHS/BHS batch) into messages; raise on what is not HL7 v2."""
    text = text_decode(body)
    lines = [line.lstrip("\x0b") for line in lines_split(text)]
    if not lines:
        raise PayloadRejected([Problem("", "the payload is empty")], kind="empty")
    first = lines[0]
    if not _SEGMENT_ID.match(first[:3]) or (
        separators_read(first) is None and first[:3] in {"MSH", "FHS", "BHS"}
    ):
        raise PayloadRejected(
            [Problem("line 1", "this is not HL7 v2: it does not start with an MSH, FHS or BHS segment")],
            kind="not-hl7",
        )
    if first[:3] not in {"MSH", "FHS", "BHS"}:
        raise PayloadRejected(
            [Problem("line 1", f"this is not an HL7 v2 message: it starts with {first[:3]}, not MSH")],
            kind="not-hl7",
        )
    messages: list[Message] = []
    problems: list[Problem] = []
    batch_separators = separators_read(first) or Separators()
    current: Message | None = None
    trailers: dict[str, Segment] = {}
    headers: set[str] = set()
    for line_number, line in enumerate(lines, start=1):
        name = line[:3]
        if name == "MSH":
            separators = separators_read(line)
            if separators is None:
                problems.append(
                    Problem(
                        f"message {len(messages) + 1}, line {line_number}",
                        "MSH declares no usable separators",
                    )
                )
                current = None
                continue
            current = Message(
                number=len(messages) + 1,
                segments=[_segment(line, position=1, separators=separators)],
                separators=separators,
            )
            messages.append(current)
        elif name in BATCH_SEGMENTS:
            separators = separators_read(line) if name in {"FHS", "BHS"} else None
            batch_separators = separators or batch_separators
            segment = _segment(line, position=0, separators=batch_separators)
            if name in {"FHS", "BHS"}:
                headers.add(name)
            else:
                trailers[name] = segment
            current = None
        elif not _SEGMENT_ID.match(name) or (
            len(line) > 3 and line[3] != (current.separators.field if current else batch_separators.field)
        ):
            where = f"message {current.number}, line {line_number}" if current else f"line {line_number}"
            problems.append(Problem(where, "this line is not an HL7 v2 segment (a segment id and fields)"))
        elif current is None:
            problems.append(
                Problem(f"line {line_number}", f"segment {name} is outside any message (no MSH before it)")
            )
        else:
            current.segments.append(
                _segment(line, position=len(current.segments) + 1, separators=current.separators)
            )
    if not messages and not problems:
        raise PayloadRejected(
            [Problem("", "the payload holds no MSH segment: it has no message")], kind="not-hl7"
        )
    problems.extend(_batch_problems(headers=headers, trailers=trailers, message_count=len(messages)))
    if problems:
        kind = "truncated" if any("truncated" in problem.message for problem in problems) else "malformed"
        raise PayloadRejected(problems, kind=kind)
    return messages


def _batch_problems(*, headers: set[str], trailers: dict[str, Segment], message_count: int) -> list[Problem]:
    problems = []
    for header, trailer in (("BHS", "BTS"), ("FHS", "FTS")):
        if header in headers and trailer not in trailers:
            problems.append(
                Problem(header, f"the {header} batch has no {trailer} trailer: the file looks truncated")
            )
    batch_trailer = trailers.get("BTS")
    declared = batch_trailer.get(1) if batch_trailer is not None else ""
    if declared.isdigit() and int(declared) != message_count:
        problems.append(
            Problem(
                "BTS-1",
                f"the batch trailer counts {int(declared)} messages but the batch holds {message_count}: "
                "the file looks truncated or padded",
            )
        )
    return problems
