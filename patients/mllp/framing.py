"""MLLP framing: a message travels between a start block (0x0B) and an end block (0x1C 0x0D).

The decoder is fed whatever the socket delivers and hands back what it found, in order. It never keeps
more than the size limit of one message: an oversized frame is reported once and then skipped up to
its end block, so a misbehaving sender cannot exhaust memory.
"""

from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
# Enough of an oversized message's start to read its MSH segment for the rejection.
HEAD_BYTES = 4096


def frame(body: bytes) -> bytes:
    return START_BLOCK + body + END_BLOCK


@dataclass(frozen=True)
class Message:
    body: bytes


@dataclass(frozen=True)
class Junk:
    """Bytes outside any frame; discarded. Only their number is kept."""

    size: int


@dataclass(frozen=True)
class Oversized:
    """A frame longer than the limit: refused without storing it; the rest of it is skipped."""

    size: int
    head: bytes


@dataclass(frozen=True)
class Abandoned:
    """A frame cut short by a new start block: the sender gave up on it and started again."""

    size: int


Event = Message | Junk | Oversized | Abandoned


class FrameDecoder:
    def __init__(self, *, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._inside = False
        self._skipping = False
        # How far the current frame has already been searched, so a large message is not rescanned per chunk.
        self._searched = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of a frame started but not finished (what a closing or idle connection would lose)."""
        return len(self._buffer) if self._inside or self._skipping else 0

    @property
    def in_frame(self) -> bool:
        return self._inside or self._skipping

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        junk = 0
        while self._buffer:
            if self._skipping:
                if not self._skip():
                    break
            elif not self._inside:
                start = self._buffer.find(START_BLOCK)
                if start == -1:
                    junk += len(self._buffer)
                    self._buffer.clear()
                    break
                junk += start
                del self._buffer[: start + 1]
                self._inside = True
                self._searched = 0
            else:
                found = self._frame_end()
                if found is None:
                    break
                events.append(found)
        if junk:
            events.insert(0, Junk(size=junk))
        return events

    def _frame_end(self) -> Event | None:
        """The next event of the current frame, or None when more bytes are needed."""
        # One byte back: an end block can be split across two reads.
        search_from = max(self._searched - 1, 0)
        end = self._buffer.find(END_BLOCK, search_from)
        restart = self._buffer.find(START_BLOCK, search_from, end if end != -1 else len(self._buffer))
        if restart != -1:
            del self._buffer[: restart + 1]
            self._searched = 0
            return Abandoned(size=restart)
        if end == -1:
            if len(self._buffer) > self.max_message_bytes:
                refused = Oversized(size=len(self._buffer), head=bytes(self._buffer[:HEAD_BYTES]))
                self._inside = False
                self._skipping = True
                self._keep_possible_end()
                return refused
            self._searched = len(self._buffer)
            return None
        self._inside = False
        if end > self.max_message_bytes:
            event: Event = Oversized(size=end, head=bytes(self._buffer[:HEAD_BYTES]))
        else:
            event = Message(body=bytes(self._buffer[:end]))
        del self._buffer[: end + len(END_BLOCK)]
        return event

    def _skip(self) -> bool:
        """Drop the rest of an oversized frame. True once its end (or a new start block) is reached."""
        end = self._buffer.find(END_BLOCK)
        restart = self._buffer.find(START_BLOCK, 0, end if end != -1 else len(self._buffer))
        if restart != -1:
            del self._buffer[:restart]
            self._skipping = False
            return True
        if end == -1:
            self._keep_possible_end()
            return False
        del self._buffer[: end + len(END_BLOCK)]
        self._skipping = False
        return True

    def _keep_possible_end(self) -> None:
        """Discard the buffer except a trailing 0x1C, which may be the first half of the end block."""
        keep = self._buffer.endswith(END_BLOCK[:1])
        self._buffer.clear()
        if keep:
            self._buffer += END_BLOCK[:1]
