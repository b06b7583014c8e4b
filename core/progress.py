"""Progress shown on stderr by long-running management commands."""

import sys
import time


class ProgressBar:
    """A progress bar on stderr for long runs: redrawn in place on a terminal, a line per tenth otherwise."""

    def __init__(self, total: int, *, label: str, minimum: int = 1) -> None:
        self.total = total
        self.label = label
        self.enabled = total >= minimum
        self.interactive = sys.stderr.isatty()
        self.last_tenth = -1
        self.started = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        fraction = done / self.total
        filled = int(fraction * 30)
        line = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}"
        line += f" {time.monotonic() - self.started:.0f}s"
        if self.interactive:
            sys.stderr.write("\r" + line)
            if done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif int(fraction * 10) > self.last_tenth:
            self.last_tenth = int(fraction * 10)
            sys.stderr.write(line + "\n")
