"""The MSH of a received message, and the ACK that answers it (used by the MLLP listener)."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from patients.ingest.hl7v2.parse import Separators, lines_split, separators_read, text_decode, unescape

ACKNOWLEDGEMENT_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
DEFAULT_VERSION = "2.5"
# HL7 table 0357: the codes an ERR segment can carry without knowing more about the failure.
APPLICATION_ERROR = "207^Application internal error^HL70357"
_LOCATION = re.compile(r"\((?P<segment>[A-Z][A-Z0-9]{2})\)(?:, field [A-Z][A-Z0-9]{2}-(?P<field>\d+))?")


@dataclass(frozen=True)
class MessageHeader:
    """MSH fields as sent: routing fields keep their components and escapes, so an ACK returns them verbatim."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_control_id: str
    processing_id: str
    version: str
    message_type: str
    trigger_event: str
    field_separator: str
    encoding_characters: str


def message_header(body: bytes) -> MessageHeader | None:
    """The first MSH of a payload (a batch's first message), or None when there is no parseable MSH."""
    for line in lines_split(text_decode(body)):
        line = line.lstrip("\x0b")
        if not line.startswith("MSH"):
            continue
        separators = separators_read(line)
        if separators is None:
            return None
        fields = ["MSH", separators.field, *line.split(separators.field)[1:]]

        def raw(number: int, fields: list[str] = fields) -> str:
            return fields[number] if number < len(fields) else ""

        def component(number: int, position: int, separators: Separators = separators) -> str:
            parts = raw(number).split(separators.repetition)[0].split(separators.component)
            return unescape(parts[position - 1], separators) if position <= len(parts) else ""

        return MessageHeader(
            sending_application=raw(3),
            sending_facility=raw(4),
            receiving_application=raw(5),
            receiving_facility=raw(6),
            message_control_id=component(10, 1),
            processing_id=component(11, 1),
            version=component(12, 1),
            message_type=component(9, 1),
            trigger_event=component(9, 2),
            field_separator=separators.field,
            encoding_characters=raw(2),
        )
    return None


def escape(text: str, separators: Separators) -> str:
    """HL7-escape free text so that none of its characters is read as a separator."""
    escape_character = separators.escape
    replacements = {
        escape_character: f"{escape_character}E{escape_character}",
        separators.field: f"{escape_character}F{escape_character}",
        separators.component: f"{escape_character}S{escape_character}",
        separators.subcomponent: f"{escape_character}T{escape_character}",
        separators.repetition: f"{escape_character}R{escape_character}",
    }
    escaped = "".join(replacements.get(character, character) for character in text)
    # A segment ends at CR or LF: line breaks inside the text become the HL7 line-break escape.
    return (
        escaped.replace("\r\n", "\n")
        .replace("\r", "\n")
        .replace("\n", f"{escape_character}.br{escape_character}")
    )


def _error_location(location: str) -> str:
    """'message 1, segment 3 (PID), field PID-7' -> ERL 'PID^1^7' (segment id^sequence^field)."""
    match = _LOCATION.search(location)
    if match is None:
        return ""
    return (
        f"{match.group('segment')}^1^{match.group('field')}"
        if match.group("field")
        else f"{match.group('segment')}^1"
    )


def acknowledgement(
    header: MessageHeader | None, *, code: str, text: str = "", error_location: str = ""
) -> bytes:
    """An original-mode ACK: MSA-1 ``code`` (AA, AE, AR), and an ERR with ``text`` when it is not AA/CA."""
    if code not in ACKNOWLEDGEMENT_CODES:
        raise ValueError(f"acknowledgement code must be one of {', '.join(ACKNOWLEDGEMENT_CODES)}")
    separators = (
        separators_read(f"MSH{header.field_separator}{header.encoding_characters}{header.field_separator}")
        if header is not None
        else None
    ) or Separators()
    field = separators.field
    version = (header.version if header is not None else "") or DEFAULT_VERSION
    trigger = header.trigger_event if header is not None else ""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = [
        "MSH",
        separators.encoding_characters,
        header.receiving_application if header else "",
        header.receiving_facility if header else "",
        header.sending_application if header else "",
        header.sending_facility if header else "",
        now,
        "",
        separators.component.join(["ACK", trigger, "ACK"]) if trigger else "ACK",
        uuid.uuid4().hex[:20],  # MSH-10 allows 20 characters up to v2.5
        (header.processing_id if header else "") or "P",
        version,
    ]
    original_id = escape(header.message_control_id, separators) if header is not None else ""
    segments = [field.join(msh), field.join(["MSA", code, original_id])]
    if code not in {"AA", "CA"}:
        escaped_text = escape(text, separators)
        if version < "2.5":
            # v2.3/2.4 ERR-1 (ELD): segment^sequence^field^code&text.
            location = _error_location(error_location).split(separators.component)
            location += [""] * (3 - len(location))
            code_and_text = separators.subcomponent.join(["207", escaped_text])
            segments.append(field.join(["ERR", separators.component.join([*location[:3], code_and_text])]))
        else:
            error_code = APPLICATION_ERROR.replace("^", separators.component)
            erl = _error_location(error_location).replace("^", separators.component)
            segments.append(field.join(["ERR", "", erl, error_code, "E", "", "", "", escaped_text]))
    return ("\r".join(segments) + "\r").encode("utf-8")
