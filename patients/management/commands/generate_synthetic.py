"""Write a synthetic multi-source population and/or clones of Synthea bundles. Prints counts only."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from patients.synthetic import generate_population, write_population, write_synthea_clones


class Command(BaseCommand):
    help = (
        "Write synthetic patients in three sources with ground truth (--people), and/or clones of every "
        "Synthea patient bundle (--synthea-clones with --synthea-dir) into --out/synthea-clones/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=0, help="Number of synthetic people to generate.")
        parser.add_argument("--seed", type=int, default=0, help="Same seed, same output.")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write into.")
        parser.add_argument("--synthea-clones", type=int, default=0, help="Clones of each Synthea patient.")
        parser.add_argument("--synthea-dir", type=Path, help="Folder of Synthea transaction Bundles.")

    def handle(self, *args: Any, **options: Any) -> None:
        people: int = options["people"]
        seed: int = options["seed"]
        # call_command() passes optional arguments through unparsed, so strings arrive here too.
        out = Path(options["out"])
        clones: int = options["synthea_clones"]
        synthea_dir = Path(options["synthea_dir"]) if options["synthea_dir"] is not None else None
        if people < 0 or clones < 0:
            raise CommandError("--people and --synthea-clones must be zero or more.")
        if not people and not clones:
            raise CommandError("Nothing to do: give --people, or --synthea-clones with --synthea-dir.")
        if clones and synthea_dir is None:
            raise CommandError("--synthea-clones needs --synthea-dir.")
        if synthea_dir is not None and not synthea_dir.is_dir():
            raise CommandError(f"--synthea-dir {synthea_dir} is not a folder.")

        if people:
            counts = write_population(generate_population(people=people, seed=seed), out)
            self.stdout.write(f"Population (seed {seed}) written to {out}: {_summary(counts)}")
        if clones and synthea_dir is not None:
            clones_dir = out / "synthea-clones"
            counts = write_synthea_clones(synthea_dir, clones_dir, copies=clones, seed=seed)
            self.stdout.write(f"Synthea clones (seed {seed}) written to {clones_dir}: {_summary(counts)}")


def _summary(counts: dict[str, int]) -> str:
    # Counts only: names and other PHI-like values never reach the terminal or its logs.
    return ", ".join(f"{key} {value}" for key, value in counts.items())
