from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from core.progress import ProgressBar
from patients.matching.relinking import relink_all


class Command(BaseCommand):
    help = "Re-link every stored patient record with the active model; manual decisions are kept."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        bars: dict[str, ProgressBar] = {}

        def progress(label: str, done: int, total: int) -> None:
            if options["quiet"]:
                return
            bar = bars.setdefault(label, ProgressBar(total, label=label))
            bar.update(done)

        result = relink_all(progress=progress)
        states = ", ".join(f"{state} {count}" for state, count in sorted(result.states.items()))
        self.stdout.write(
            f"re-linked {result.records} records ({result.pairs_scored} pairs scored): {states}; "
            f"{result.manual_kept} manual links kept; {result.links_changed} links changed; "
            f"{result.patients_created} golden patients created, {result.patients_retired} retired"
        )
        if result.engine_disagreements:
            self.stderr.write(
                f"warning: {result.engine_disagreements} pairs scored differently by Splink and online"
            )
