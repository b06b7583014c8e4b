"""The PHI read audit helper records who, what, when, from where and why, from every entry point."""

import time
import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.db import DataError, connection, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.request import Request

from core.audit import phi_access_context, phi_access_record, phi_access_record_many, phi_rows_read
from core.context import acting_as
from core.models import AccessEvent, uuid7
from core.roles import CARE_COORDINATOR


def test_html_view_read_is_recorded(role_users: dict[str, User]) -> None:
    user = role_users[CARE_COORDINATOR]
    request = RequestFactory().get("/patients/abc/", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest-browser")
    request.user = user
    patient = uuid.uuid4()

    event = phi_access_record(request=request, patient_ref=patient, purpose="care coordination")

    stored = AccessEvent.objects.get(pk=event.pk)
    assert stored.actor == user
    assert stored.actor_username == "coordinator"
    assert stored.channel == AccessEvent.Channel.HTML
    assert stored.action == AccessEvent.Action.READ
    assert stored.patient_ref == str(patient)
    assert stored.remote_addr == "10.1.2.3"
    assert stored.user_agent == "pytest-browser"
    assert stored.path == "/patients/abc/"
    assert stored.purpose == "care coordination"
    assert stored.occurred_at is not None


def test_drf_and_fhir_requests_are_recorded_with_their_channel(role_users: dict[str, User]) -> None:
    user = role_users[CARE_COORDINATOR]
    api_request = Request(RequestFactory().get("/api/v1/patients/1/", REMOTE_ADDR="10.0.0.9"))
    api_request.user = user
    fhir_request = RequestFactory().get("/fhir/Patient/1")
    fhir_request.user = user

    api_event = phi_access_record(request=api_request, patient_ref="p-1", purpose="api read")
    fhir_event = phi_access_record(request=fhir_request, patient_ref="p-1", purpose="fhir read")

    assert api_event.channel == AccessEvent.Channel.API
    assert api_event.remote_addr == "10.0.0.9"
    assert api_event.actor == user
    assert fhir_event.channel == AccessEvent.Channel.FHIR


def test_task_read_takes_the_actor_from_acting_as(role_users: dict[str, User]) -> None:
    user = role_users[CARE_COORDINATOR]
    some_group = Group.objects.get(name=CARE_COORDINATOR)

    with acting_as(user):
        event = phi_access_record(obj=some_group, purpose="nightly export", action=AccessEvent.Action.EXPORT)

    assert event.actor == user
    assert event.channel == AccessEvent.Channel.TASK
    assert event.object_type == "auth.group"
    assert event.object_ref == str(some_group.pk)
    assert event.remote_addr is None


def test_read_without_any_actor_is_recorded_as_system(db: None) -> None:
    event = phi_access_record(patient_ref="p-2", purpose="scheduled data quality scan")

    assert event.actor is None
    assert event.actor_username == ""
    assert str(event) == "system read p-2"


@pytest.mark.postgres
@pytest.mark.django_db
def test_many_reads_are_recorded_a_row_each_in_one_statement(role_users: dict[str, User]) -> None:
    user = role_users[CARE_COORDINATOR]
    request = RequestFactory().get(
        "/patients/search/?q=alma", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest"
    )
    request.user = user
    patients = [uuid.uuid4() for _ in range(60)]  # past the parameters psycopg caches a statement for

    with CaptureQueriesContext(connection) as queries:
        written = phi_access_record_many(
            request=request, patient_refs=patients, purpose="patient search", action=AccessEvent.Action.SEARCH
        )

    assert len(queries) == 1
    assert written == 60
    rows = list(AccessEvent.objects.filter(path="/patients/search/?q=alma"))
    assert sorted(row.patient_ref for row in rows) == sorted(str(patient) for patient in patients)
    for row in rows:
        assert (row.actor, row.actor_username, row.action, row.channel) == (
            user,
            "coordinator",
            AccessEvent.Action.SEARCH,
            AccessEvent.Channel.HTML,
        )
        assert (row.purpose, row.remote_addr, row.user_agent) == ("patient search", "10.1.2.3", "pytest")
    assert len({row.occurred_at for row in rows}) == 1
    assert len({row.external_id for row in rows}) == 60


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_single_read_returns_its_stored_row(role_users: dict[str, User]) -> None:
    request = RequestFactory().get("/patients/abc/")
    request.user = role_users[CARE_COORDINATOR]

    with CaptureQueriesContext(connection) as queries:
        event = phi_access_record(request=request, patient_ref="p-9", purpose="patient page")

    assert len(queries) == 1
    stored = AccessEvent.objects.get(pk=event.pk)
    assert (stored.external_id, stored.occurred_at, stored.patient_ref) == (
        event.external_id,
        event.occurred_at,
        "p-9",
    )


def test_no_patients_write_no_rows(role_users: dict[str, User]) -> None:
    request = RequestFactory().get("/fhir/Patient")
    request.user = role_users[CARE_COORDINATOR]

    with CaptureQueriesContext(connection) as queries:
        written = phi_access_record_many(request=request, patient_refs=[], purpose="FHIR search")

    assert (written, len(queries)) == (0, 0)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_patient_reference_too_long_fails_the_whole_record_and_writes_nothing(
    role_users: dict[str, User],
) -> None:
    request = RequestFactory().get("/fhir/Patient")
    request.user = role_users[CARE_COORDINATOR]
    before = AccessEvent.objects.count()

    with pytest.raises(DataError), transaction.atomic():
        phi_access_record_many(request=request, patient_refs=["p-1", "x" * 65], purpose="FHIR search")

    assert AccessEvent.objects.count() == before


def test_uuid7_puts_the_time_first_then_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    drawn = [uuid7() for _ in range(200)]
    after = time.time_ns() // 1_000_000

    assert {value.version for value in drawn} == {7}
    assert {value.variant for value in drawn} == {uuid.RFC_4122}
    assert all(before <= value.int >> 80 <= after for value in drawn)
    assert [value.int >> 80 for value in drawn] == sorted(value.int >> 80 for value in drawn)
    assert len(set(drawn)) == 200


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_draws_time_ordered_ids_for_the_rows(role_users: dict[str, User]) -> None:
    """The rows' ids come from the database's clock in the layout of ``uuid7``, so the unique index is
    written at its end rather than at a random page."""
    request = RequestFactory().get("/patients/search/?q=ids")
    request.user = role_users[CARE_COORDINATOR]
    before = time.time_ns() // 1_000_000

    phi_access_record_many(request=request, patient_refs=["p-1", "p-2", "p-3"], purpose="patient search")
    event = phi_access_record(request=request, patient_ref="p-4", purpose="patient search")

    after = time.time_ns() // 1_000_000
    ids = list(
        AccessEvent.objects.filter(path="/patients/search/?q=ids").values_list("external_id", flat=True)
    )
    assert len(ids) == 4
    assert event.external_id in ids
    assert {value.version for value in ids} == {7}
    assert {value.variant for value in ids} == {uuid.RFC_4122}
    assert all(
        before - 5 <= value.int >> 80 <= after + 5 for value in ids
    )  # the server's clock is this one's


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_read_are_recorded_by_the_statement_that_reads_them(role_users: dict[str, User]) -> None:
    request = RequestFactory().get("/patients/search/?q=rows", REMOTE_ADDR="10.1.2.3")
    request.user = role_users[CARE_COORDINATOR]
    context = phi_access_context(purpose="patient search", request=request, action=AccessEvent.Action.SEARCH)
    refs = [str(uuid.uuid4()) for _ in range(3)]
    sql = "SELECT v.ref AS patient_ref, v.n FROM (VALUES (%s, 3), (%s, 1), (%s, 2)) v (ref, n)"

    with CaptureQueriesContext(connection) as queries:
        rows = phi_rows_read(
            sql, refs, patient_ref_column="patient_ref", context=context, order_by="ORDER BY n"
        )

    assert len(queries) == 1
    assert rows == [(refs[1], 1), (refs[2], 2), (refs[0], 3)]
    stored = list(AccessEvent.objects.filter(path="/patients/search/?q=rows"))
    assert sorted(event.patient_ref for event in stored) == sorted(refs)
    for event in stored:
        assert (event.actor, event.action, event.channel, event.purpose, event.remote_addr) == (
            role_users[CARE_COORDINATOR],
            AccessEvent.Action.SEARCH,
            AccessEvent.Channel.HTML,
            "patient search",
            "10.1.2.3",
        )
        assert event.external_id.version == 7


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_whose_record_fails_are_not_returned(role_users: dict[str, User]) -> None:
    request = RequestFactory().get("/patients/search/?q=too-long")
    request.user = role_users[CARE_COORDINATOR]
    context = phi_access_context(purpose="patient search", request=request)
    before = AccessEvent.objects.count()

    with pytest.raises(DataError), transaction.atomic():
        phi_rows_read(
            "SELECT v.ref FROM (VALUES (%s), (%s)) v (ref)",
            ["p-1", "x" * 65],
            patient_ref_column="ref",
            context=context,
        )

    assert AccessEvent.objects.count() == before
