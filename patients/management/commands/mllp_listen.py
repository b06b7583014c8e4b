"""python manage.py mllp_listen --source SLUG [--host 127.0.0.1] [--port 2575] [--processing-id P]"""

import asyncio
import logging
import signal
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from patients.mllp.server import MllpListener
from patients.services import source_ensure

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Receive HL7 v2 messages over MLLP for one source: each is stored, processed, then acknowledged."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--source", required=True, help="Source slug; an unknown one is created (kind other)."
        )
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument(
            "--port", type=int, default=2575, help="TCP port (default 2575; 0 picks a free one)."
        )
        parser.add_argument(
            "--processing-id",
            default="P",
            help="MSH-11 processing id accepted (default P); messages with another one are refused (AR).",
        )
        parser.add_argument(
            "--workers", type=int, default=4, help="Threads storing and processing messages (default 4)."
        )
        parser.add_argument(
            "--report-every", type=float, default=60.0, help="Seconds between count lines in the log (INFO)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        source, created = source_ensure(actor=None, slug=options["source"])
        if created:
            self.stderr.write(
                self.style.WARNING(f"Source {source.slug!r} was unknown: created it with kind 'other'.")
            )
        # The main thread does no more database work; the listener's workers hold their own connections.
        connections.close_all()
        listener = MllpListener(
            source=source,
            host=options["host"],
            port=options["port"],
            processing_id=options["processing_id"],
            max_message_bytes=int(settings.CONCORD_MLLP_MAX_MESSAGE_BYTES),
            read_timeout_seconds=float(settings.CONCORD_MLLP_READ_TIMEOUT_SECONDS),
            workers=options["workers"],
        )
        try:
            asyncio.run(self._serve(listener, report_every=options["report_every"]))
        except OSError as error:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {error.strerror}"
            ) from error
        self.stdout.write(f"Stopped. {listener.counts_line()}")

    async def _serve(self, listener: MllpListener, *, report_every: float) -> None:
        host, port = await listener.start()
        self.stdout.write(
            f"Listening for MLLP on {host}:{port} (source {listener.source.slug}, "
            f"processing id {listener.processing_id})"
        )
        self.stdout.flush()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, lambda: asyncio.ensure_future(listener.stop()))
        reporter = asyncio.create_task(self._report(listener, every=report_every))
        try:
            await listener.serve_until_stopped()
        finally:
            reporter.cancel()

    async def _report(self, listener: MllpListener, *, every: float) -> None:
        previous = ""
        while True:
            await asyncio.sleep(every)
            line = listener.counts_line()
            if line != previous:  # quiet while nothing happens
                logger.info("MLLP listener: %s", line)
                previous = line
