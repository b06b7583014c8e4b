import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from patients.matching.linking import active_weights
from patients.matching.services import match_model_train


class Command(BaseCommand):
    help = (
        "Fit the patient index's Fellegi-Sunter weights (Splink EM) on every stored record and activate them."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--auto-match-probability", type=float, help="Automatic MATCH at or above this.")
        parser.add_argument(
            "--review-probability", type=float, help="POSSIBLE_MATCH (review) at or above this."
        )
        parser.add_argument(
            "--max-pairs", type=float, default=2e6, help="Random pairs sampled to estimate u."
        )
        parser.add_argument("--export", type=Path, help="Also write the model as JSON to this file.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = match_model_train(
                actor=None,
                auto_match_probability=options["auto_match_probability"],
                review_probability=options["review_probability"],
                max_pairs=options["max_pairs"],
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        weights = active_weights()
        self.stdout.write(
            f"match model {model.pk} trained on {model.record_count} records and activated "
            f"(prior weight {weights.prior_weight:.2f}; automatic match >= {model.auto_match_probability}, "
            f"review >= {model.review_probability})"
        )
        for comparison in weights.comparisons:
            levels = ", ".join(
                f"{label} {weight:+.1f}"
                for label, weight in zip(comparison.labels[1:], comparison.weights[1:], strict=True)
            )
            self.stdout.write(f"  {comparison.name}: {levels}")
        if options["export"]:
            options["export"].write_text(
                json.dumps(
                    {
                        "splink_settings": model.splink_settings,
                        "term_frequencies": {},
                        "auto_match_probability": model.auto_match_probability,
                        "review_probability": model.review_probability,
                        "summary": model.summary,
                    },
                    indent=1,
                    sort_keys=True,
                ),
                encoding="utf-8",
            )
            self.stdout.write(f"written to {options['export']}")
