from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from core.services import api_token_issue


class Command(BaseCommand):
    help = (
        "Issue a new API token acting as USERNAME and print it (shown only this once). "
        "Tokens are listed and revoked in the admin."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for, as listed in the admin.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        try:
            _, token = api_token_issue(actor=None, user=user, name=options["name"])
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(token)
