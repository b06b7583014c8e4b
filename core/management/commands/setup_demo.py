from django.conf import settings
from django.core.management.base import BaseCommand

from core.roles import ADMINISTRATOR, CARE_COORDINATOR, DATA_STEWARD, EXECUTIVE
from core.services import roles_sync, staff_user_ensure

DEMO_USERS = (
    ("coordinator", CARE_COORDINATOR),
    ("steward", DATA_STEWARD),
    ("executive", EXECUTIVE),
    ("admin", ADMINISTRATOR),
)


class Command(BaseCommand):
    help = "Set up the demo: role groups and one demo login per role. Safe to run again."

    def handle(self, *args: object, **options: object) -> None:
        roles_sync()
        password = settings.CONCORD_DEMO_PASSWORD
        for username, role in DEMO_USERS:
            staff_user_ensure(username=username, role_name=role, password=password)
            self.stdout.write(f"  {username:<12} {role}")
        self.stdout.write(
            self.style.SUCCESS("Demo logins ready (password: see README / CONCORD_DEMO_PASSWORD).")
        )
