"""The FHIR read API: API tokens, metadata, Patient search, $everything, clinical search; permissions and audit.

Data arrives through the real pipeline: two shared Synthea bundles from a hospital EHR, and one of them again
from a clinic EHR, so one golden patient has records (and resources) in two sources.
"""

import importlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from core.models import AccessEvent, ApiToken
from core.permissions import object_permission_grant
from core.roles import ADMINISTRATOR, CARE_COORDINATOR
from core.services import api_token_issue, api_token_revoke
from patients.api.fhir_bundles import SOURCE_TAG_SYSTEM, served_resource_id
from patients.api.fhir_parameters import (
    CLINICAL_PARAMETERS,
    MAX_COUNT,
    PATIENT_PARAMETERS,
    SEARCHABLE_TYPES,
    search_parse,
)
from patients.fhir import resource_validation_problems
from patients.models import InboundPayload, Patient, ResourceCoding, Source, SourcePatient, SourceResource
from patients.services import source_create
from tests.patients.conftest import SHARED_DATA, VITAL_SIGNS_CATEGORY, as_bytes

SYNTHEA = SHARED_DATA / "synthea-r4"
TONY_ID = "f6d715f8-94c0-49ad-a46a-4f96dc7a67b4"  # Tony Douglas, 1972-04-18, 555-707-6353, allergies
AGUSTIN_ID = "cb5696d9-a0de-4f49-94f9-433f96a28eb0"  # Agustín Fonseca, 1994-02-01
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"shared test data is absent ({SYNTHEA})"),
]

Land = Callable[..., InboundPayload]


def _bundle_bytes(record_id: str) -> bytes:
    (path,) = SYNTHEA.glob(f"*_{record_id}.json")
    return path.read_bytes()


@dataclass
class World:
    hospital: Source
    clinic: Source
    tony: Patient
    agustin: Patient
    coordinator: User
    nurse: User  # the Patients area, and Tony only (object permission)
    nobody: User  # no patient permission at all


def _permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="patients", codename=codename)


def _golden(source: Source, bundle_id: str) -> Patient:
    """The golden patient of the Patient record in a shared bundle (named by the bundle's file)."""
    record_id = json.loads(_bundle_bytes(bundle_id))["entry"][0]["resource"]["id"]
    return SourcePatient.objects.get(source=source, source_record_id=record_id).link.patient


@pytest.fixture
def world(land: Land, role_users: dict[str, User]) -> World:
    hospital = source_create(actor=None, slug="hospital-ehr", name="Hospital EHR", kind=Source.Kind.EHR)
    clinic = source_create(actor=None, slug="clinic-ehr", name="Clinic EHR", kind=Source.Kind.EHR)
    for record_id in (TONY_ID, AGUSTIN_ID):
        assert land(hospital, _bundle_bytes(record_id)).status == InboundPayload.Status.ACCEPTED
    assert land(clinic, _bundle_bytes(TONY_ID)).status == InboundPayload.Status.ACCEPTED
    tony = _golden(hospital, TONY_ID)
    assert _golden(clinic, TONY_ID) == tony  # the patient index linked both records to one person
    nurse = User.objects.create_user("nurse-granted", password="x")
    nurse.user_permissions.add(_permission("access_patients"))
    object_permission_grant(perm="patients.view_patient", grantee=nurse, obj=tony)
    return World(
        hospital=hospital,
        clinic=clinic,
        tony=tony,
        agustin=_golden(hospital, AGUSTIN_ID),
        coordinator=role_users[CARE_COORDINATOR],
        nurse=nurse,
        nobody=User.objects.create_user("no-access", password="x"),
    )


def _client(user: User) -> Client:
    _, token = api_token_issue(actor=None, user=user)
    return Client(headers={"Authorization": f"Bearer {token}"})


def _valid(document: dict[str, Any]) -> dict[str, Any]:
    """The document, once it has parsed with fhir.resources R4B (a Bundle parses every entry's resource)."""
    assert resource_validation_problems(document, path=document["resourceType"]) == []
    return document


def _get(client: Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    return _valid(response.json())


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _link(bundle: dict[str, Any], relation: str) -> str:
    return next((link["url"] for link in bundle["link"] if link["relation"] == relation), "")


def _pages(client: Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a search, following next links as a client does."""
    pages = [_get(client, path, **params)]
    while next_url := _link(pages[-1], "next"):
        parts = urlsplit(next_url)
        assert parts.path == path
        pages.append(_get(client, parts.path, **dict(parse_qsl(parts.query))))
        assert len(pages) < 100
    return pages


def _stored_resources(patient: Patient) -> list[SourceResource]:
    return list(
        SourceResource.objects.filter(patient__link__patient=patient).select_related("source").order_by("pk")
    )


def _served_id(row: SourceResource) -> str:
    return served_resource_id(
        source_slug=row.source.slug, resource_type=row.resource_type, source_record_id=row.source_record_id
    )


# API tokens ----------------------------------------------------------------------------------------


def test_api_token_command_prints_a_token_that_authenticates(world: World) -> None:
    out = StringIO()
    call_command("api_token", "coordinator", "--name", "integration tests", stdout=out)
    token = out.getvalue().strip()

    response = Client(headers={"Authorization": f"Bearer {token}"}).get(
        f"/fhir/Patient/{world.tony.external_id}"
    )

    assert response.status_code == 200
    stored = ApiToken.objects.get()
    assert stored.user == world.coordinator
    assert stored.name == "integration tests"
    assert token.startswith(stored.prefix)
    assert len(token) > 40
    assert stored.token_sha256 == ApiToken.digest(token) != token
    assert stored.last_used_at is not None


def test_api_token_command_refuses_an_unknown_or_inactive_user(world: World) -> None:
    world.nobody.is_active = False
    world.nobody.save()

    for username in ("no-such-user", "no-access"):
        with pytest.raises(Exception, match=r"No user|not active"):
            call_command("api_token", username, stdout=StringIO())
    assert not ApiToken.objects.exists()


def test_bad_revoked_and_deactivated_tokens_are_refused(world: World) -> None:
    api_token, token = api_token_issue(actor=None, user=world.coordinator)
    _other, other_token = api_token_issue(actor=None, user=world.nurse)
    api_token_revoke(actor=None, api_token=api_token)
    world.nurse.is_active = False
    world.nurse.save()

    for header in (f"Bearer {token}", f"Bearer {other_token}", "Bearer cat_not-a-token", "Bearer a b"):
        response = Client(headers={"Authorization": header}).get("/fhir/Patient")

        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="concord-fhir", error="invalid_token"'
        outcome = _valid(response.json())
        assert outcome["issue"][0]["code"] == "login"
        assert token not in response.content.decode()
    assert not AccessEvent.objects.exists()


def test_a_request_without_a_token_gets_the_bare_challenge(world: World) -> None:
    for path in ("/fhir/Patient", f"/fhir/Patient/{world.tony.external_id}", "/fhir/Procedure"):
        response = Client().get(path)

        assert response.status_code == 401, path
        assert response["WWW-Authenticate"] == 'Bearer realm="concord-fhir"'
        assert _valid(response.json())["issue"][0]["code"] == "login"


def test_tokens_never_reach_the_logs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    out = StringIO()
    call_command("api_token", "coordinator", stdout=out)
    token = out.getvalue().strip()
    client = Client(headers={"Authorization": f"Bearer {token}"})
    client.get("/fhir/Patient", {"name": "Douglas"})
    client.get("/fhir/Patient", {"bogus": "1"})
    api_token_revoke(actor=None, api_token=ApiToken.objects.get())
    client.get("/fhir/Patient")

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "API token" in logged  # issuing and revoking are logged, by prefix
    assert token not in logged
    assert token[8:] not in logged


def test_tokens_are_listed_and_revoked_in_the_admin(world: World, role_users: dict[str, User]) -> None:
    api_token, token = api_token_issue(actor=None, user=world.coordinator, name="reporting script")
    admin = Client()
    admin.force_login(role_users[ADMINISTRATOR])

    listing = admin.get("/admin/core/apitoken/")

    assert listing.status_code == 200
    assert api_token.prefix in listing.content.decode()
    assert "reporting script" in listing.content.decode()
    assert api_token.token_sha256 not in listing.content.decode()
    assert admin.get("/admin/core/apitoken/add/").status_code == 403

    response = admin.post(
        "/admin/core/apitoken/", {"action": "revoke", "_selected_action": [str(api_token.pk)]}, follow=True
    )

    assert response.status_code == 200
    api_token.refresh_from_db()
    assert api_token.revoked_at is not None
    assert Client(headers={"Authorization": f"Bearer {token}"}).get("/fhir/Patient").status_code == 401


def test_session_authentication_still_works(world: World, coordinator_client: Client) -> None:
    bundle = _get(coordinator_client, "/fhir/Patient", family="douglas")

    assert [resource["id"] for resource in _resources(bundle)] == [str(world.tony.external_id)]


# Metadata ------------------------------------------------------------------------------------------


def test_metadata_is_public_and_tells_what_is_supported(client: Client) -> None:
    statement = _get(client, "/fhir/metadata")

    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    (rest,) = statement["rest"]
    assert {item["code"] for item in rest["interaction"]} == {"transaction", "batch"}
    resources = {resource["type"]: resource for resource in rest["resource"]}
    assert list(resources) == ["Patient", *SEARCHABLE_TYPES]
    patient = resources["Patient"]
    assert {item["code"] for item in patient["interaction"]} == {"read", "search-type", "create"}
    assert [param["name"] for param in patient["searchParam"]] == [param.name for param in PATIENT_PARAMETERS]
    assert {operation["name"] for operation in patient["operation"]} == {"match", "everything"}
    for resource_type in SEARCHABLE_TYPES:
        resource = resources[resource_type]
        assert {item["code"] for item in resource["interaction"]} == {"search-type", "create"}
        assert [param["name"] for param in resource["searchParam"]] == [
            param.name for param in CLINICAL_PARAMETERS[resource_type]
        ]
    assert not AccessEvent.objects.exists()


def test_every_declared_search_parameter_is_answered_and_others_refused(world: World) -> None:
    client = _client(world.coordinator)
    statement = client.get("/fhir/metadata").json()
    samples = {
        "string": "dou",
        "token": "x",
        "date": "ge2000-01-01",
        "reference": f"Patient/{world.tony.external_id}",
    }
    samples_by_name = {"phone": "555-707-6353", "email": "tony@example.org", "gender": "male"}

    for resource in statement["rest"][0]["resource"]:
        path = f"/fhir/{resource['type']}"
        for param in resource["searchParam"]:
            value = samples_by_name.get(param["name"], samples[param["type"]])
            response = client.get(path, {param["name"]: value})
            assert response.status_code == 200, (path, param["name"], response.content)
        refused = client.get(path, {"not-a-parameter": "1"})
        assert refused.status_code == 400
        assert _valid(refused.json())["issue"][0]["code"] == "not-supported"
    assert client.get("/fhir/Encounter", {"category": "x"}).status_code == 400  # Encounter has none
    assert client.get("/fhir/Patient", {"_sort": "date"}).status_code == 400
    assert client.get("/fhir/Patient", {"name:exact": "Douglas"}).status_code == 400


# Authorization and audit -----------------------------------------------------------------------------


def test_authorization_matrix(world: World) -> None:
    tony, agustin = world.tony.external_id, world.agustin.external_id
    read_paths = [f"/fhir/Patient/{tony}", f"/fhir/Patient/{tony}/$everything"]
    search_paths = ["/fhir/Patient", *(f"/fhir/{resource_type}" for resource_type in SEARCHABLE_TYPES)]

    anonymous = Client()
    for path in [*read_paths, *search_paths]:
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert _valid(response.json())["resourceType"] == "OperationOutcome"

    # As on the patient pages, nothing without the Patients area permission: not even with a grant.
    granted_only = User.objects.create_user("granted-only", password="x")
    object_permission_grant(perm="patients.view_patient", grantee=granted_only, obj=world.tony)
    for user in (world.nobody, granted_only):
        client = _client(user)
        for path in [*read_paths, *search_paths]:
            response = client.get(path)
            assert response.status_code == 403, (user, path)
            assert _valid(response.json())["issue"][0]["code"] == "forbidden"
        match = client.post(
            "/fhir/Patient/$match",
            json.dumps({"resourceType": "Parameters", "parameter": []}),
            content_type="application/fhir+json",
        )
        assert match.status_code == 403
        assert _valid(match.json())["issue"][0]["code"] == "forbidden"

    area_only = User.objects.create_user("area-only", password="x")
    area_only.user_permissions.add(_permission("access_patients"))
    area = _client(area_only)
    for path in read_paths:  # reads answer alike for missing and forbidden
        response = area.get(path)
        assert response.status_code == 404, path
        assert _valid(response.json())["issue"][0]["code"] == "not-found"
    for path in search_paths:
        response = area.get(path)
        assert response.status_code == 403, path
        assert _valid(response.json())["issue"][0]["code"] == "forbidden"

    nurse = _client(world.nurse)
    for path in read_paths:
        assert nurse.get(path).status_code == 200, path
    assert nurse.get(f"/fhir/Patient/{agustin}").status_code == 404
    assert nurse.get(f"/fhir/Patient/{agustin}/$everything").status_code == 404
    assert nurse.get("/fhir/Patient/00000000-0000-0000-0000-000000000001/$everything").status_code == 404
    assert [patient["id"] for patient in _resources(_get(nurse, "/fhir/Patient"))] == [str(tony)]
    observations = _resources(_get(nurse, "/fhir/Observation", _count=500))
    assert observations
    assert {item["subject"]["reference"] for item in observations} == {f"Patient/{tony}"}
    assert _get(nurse, "/fhir/Observation", patient=str(agustin))["total"] == 0

    coordinator = _client(world.coordinator)
    assert {patient["id"] for patient in _resources(_get(coordinator, "/fhir/Patient"))} == {
        str(tony),
        str(agustin),
    }
    assert _get(coordinator, "/fhir/Observation", patient=str(agustin))["total"] > 0
    assert not AccessEvent.objects.filter(
        actor_username__in=["no-access", "granted-only", "area-only"]
    ).exists()


def test_reads_are_audited_for_every_patient_returned(world: World) -> None:
    client = _client(world.coordinator)

    _get(client, "/fhir/Patient")
    _get(client, f"/fhir/Patient/{world.tony.external_id}/$everything", _count=5)
    _get(client, "/fhir/Condition", _count=500)
    _get(client, "/fhir/Patient", family="nobody-has-this-name")

    events = list(
        AccessEvent.objects.order_by("pk").values_list("purpose", "patient_ref", "action", "channel")
    )
    tony, agustin = str(world.tony.external_id), str(world.agustin.external_id)
    assert sorted(events[:2]) == sorted(
        [("FHIR Patient search", tony, "search", "fhir"), ("FHIR Patient search", agustin, "search", "fhir")]
    )
    assert events[2] == ("FHIR Patient $everything", tony, "read", "fhir")
    assert sorted(events[3:]) == sorted(
        [
            ("FHIR Condition search", tony, "search", "fhir"),
            ("FHIR Condition search", agustin, "search", "fhir"),
        ]
    )
    assert set(AccessEvent.objects.values_list("actor_username", flat=True)) == {"coordinator"}


# Patient search ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "agustin"}, {"agustin"}),  # no accent in the query, one in the name
        ({"name": "AGUSTÍN"}, {"agustin"}),
        ({"given": "agus"}, {"agustin"}),
        ({"family": "fons"}, {"agustin"}),
        ({"family": "fonseca", "given": "tony"}, set()),
        ({"name": "tony,fonseca"}, {"tony", "agustin"}),
        ({"name": "ony"}, set()),  # a prefix, not a substring
        ({"birthdate": "1972-04-18"}, {"tony"}),
        ({"birthdate": "1972"}, {"tony"}),
        ({"birthdate": "ge1990-01-01"}, {"agustin"}),
        ({"birthdate": "lt1994-02-01"}, {"tony"}),
        ({"birthdate": "le1994-02-01"}, {"tony", "agustin"}),
        ({"gender": "male"}, {"tony", "agustin"}),
        ({"identifier": "http://hl7.org/fhir/sid/us-ssn|999-59-2177"}, {"tony"}),
        ({"identifier": "999-88-8619"}, {"agustin"}),
        ({"identifier": f"https://github.com/synthetichealth/synthea|{TONY_ID}"}, {"tony"}),
        ({"identifier": "http://hl7.org/fhir/sid/us-ssn|"}, {"tony", "agustin"}),
        ({"identifier": "http://hl7.org/fhir/sid/us-ssn|999-88-8619,999-59-2177"}, {"tony", "agustin"}),
        ({"identifier": "other-system|999-59-2177"}, set()),
        ({"phone": "(555) 707-6353"}, {"tony"}),
        ({"phone": "+1 555 929 9025"}, {"agustin"}),
        ({"phone": "555.707.6353", "birthdate": "1994"}, set()),
    ],
)
def test_patient_search(world: World, params: dict[str, str], expected: set[str]) -> None:
    names = {world.tony.external_id: "tony", world.agustin.external_id: "agustin"}
    bundle = _get(_client(world.coordinator), "/fhir/Patient", **params)

    found = {names[next(key for key in names if str(key) == item["id"])] for item in _resources(bundle)}
    assert found == expected
    assert bundle["total"] == len(expected)
    assert bundle["type"] == "searchset"
    assert dict(parse_qsl(urlsplit(_link(bundle, "self")).query)) == params


def test_patient_search_by_an_identifier_only_the_second_source_holds(world: World, land: Land) -> None:
    crm = source_create(actor=None, slug="crm", name="CRM", kind=Source.Kind.CRM)
    record = json.loads(_bundle_bytes(AGUSTIN_ID))["entry"][0]["resource"]
    record["identifier"] = [{"system": "urn:example:crm", "value": "CRM-0042"}]
    assert land(crm, as_bytes(record)).status == InboundPayload.Status.ACCEPTED
    assert _golden(crm, AGUSTIN_ID) == world.agustin

    bundle = _get(_client(world.coordinator), "/fhir/Patient", identifier="urn:example:crm|CRM-0042")

    assert [item["id"] for item in _resources(bundle)] == [str(world.agustin.external_id)]


def test_patient_search_pages_with_next_links(world: World) -> None:
    pages = _pages(_client(world.coordinator), "/fhir/Patient", _count=1)

    assert [len(_resources(page)) for page in pages] == [1, 1]
    assert {page["total"] for page in pages} == {2}
    ids = [item["id"] for page in pages for item in _resources(page)]
    assert sorted(ids) == sorted([str(world.tony.external_id), str(world.agustin.external_id)])


def test_search_errors_are_operation_outcomes(world: World) -> None:
    client = _client(world.coordinator)
    cases = [
        ("/fhir/Patient", {"birthdate": "yesterday"}, 400, "birthdate"),
        ("/fhir/Patient", {"name": "*?"}, 400, "name"),
        ("/fhir/Patient", {"birthdate": "2020-13"}, 400, "birthdate"),
        ("/fhir/Patient", {"phone": "call me"}, 400, "phone"),
        ("/fhir/Patient", {"_count": "-1"}, 400, "_count"),
        ("/fhir/Patient", {"_count": "²"}, 400, "_count"),  # str.isdigit() says yes, int() says no
        ("/fhir/Observation", {"_count": "٣"}, 400, "_count"),  # an Arabic-Indic three
        (f"/fhir/Patient/{world.tony.external_id}/$everything", {"_count": "1.5"}, 400, "_count"),
        ("/fhir/Patient", {"_cursor": "forged"}, 400, "_cursor"),
        ("/fhir/Observation", {"date": "ap2020-01-01"}, 400, "date"),
        ("/fhir/Observation", {"_sort": "code"}, 400, "_sort"),
        ("/fhir/Observation", {"_format": "xml"}, 406, "_format"),
        (f"/fhir/Patient/{world.tony.external_id}/$everything", {"_type": "Foo"}, 400, "_type"),
    ]
    for path, params, status, expression in cases:
        response = client.get(path, params)

        assert response.status_code == status, (params, response.content)
        (issue,) = _valid(response.json())["issue"]
        assert issue["expression"] == [expression]


@pytest.mark.parametrize(
    "prefer",
    [
        "handling=lenient",
        "return=representation, handling=lenient",  # RFC 7240: preferences are separated by commas
        'handling="lenient"',
        "handling = lenient",
        "return=minimal; handling=lenient",  # accepted before, still accepted
    ],
)
def test_lenient_handling_ignores_unknown_parameters(world: World, prefer: str) -> None:
    client = _client(world.coordinator)

    response = client.get(
        "/fhir/Patient", {"family": "douglas", "_elements": "name"}, headers={"Prefer": prefer}
    )

    assert response.status_code == 200
    bundle = response.json()
    assert bundle["total"] == 1
    assert dict(parse_qsl(urlsplit(_link(bundle, "self")).query)) == {"family": "douglas"}


@pytest.mark.parametrize("prefer", ["handling=strict", "return=representation", "handling=lenientish"])
def test_strict_handling_refuses_unknown_parameters(world: World, prefer: str) -> None:
    response = _client(world.coordinator).get(
        "/fhir/Patient", {"family": "douglas", "_elements": "name"}, headers={"Prefer": prefer}
    )

    assert response.status_code == 400
    assert _valid(response.json())["issue"][0]["code"] == "not-supported"


def test_links_carry_the_page_size_served(world: World) -> None:
    client = _client(world.coordinator)

    clamped = _get(client, "/fhir/Observation", _count="100000")
    huge = _get(client, "/fhir/Patient", _count="9" * 5000)  # beyond what int() converts
    padded = _get(client, "/fhir/Observation", _count="007")

    assert dict(parse_qsl(urlsplit(_link(clamped, "self")).query)) == {"_count": str(MAX_COUNT)}
    assert len(_resources(clamped)) == clamped["total"] <= MAX_COUNT
    assert dict(parse_qsl(urlsplit(_link(huge, "self")).query)) == {"_count": str(MAX_COUNT)}
    assert len(_resources(padded)) == 7
    for relation in ("self", "next"):
        assert dict(parse_qsl(urlsplit(_link(padded, relation)).query))["_count"] == "7"
    # The test data holds fewer than MAX_COUNT matches, so no clamped next link: both links are built from
    # the parsed parameters, which hold the clamped value.
    assert search_parse([("_count", "100000"), ("_total", "none")], parameters=()).used == (
        ("_count", str(MAX_COUNT)),
        ("_total", "none"),
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/fhir/Patient/not-a-uuid", "not-found"),
        ("/fhir/Patient/00000000-0000-0000-0000-000000000001/_history/1", "not-found"),
        ("/fhir/Observation/00000000-0000-0000-0000-000000000001", "not-supported"),  # searched, not read
        ("/fhir/Procedure", "not-supported"),  # a FHIR type the API does not serve
        ("/fhir/Procedure/123", "not-supported"),
        ("/fhir/NotAType", "not-found"),
        ("/fhir/metadata/", "not-found"),
    ],
)
def test_unrouted_requests_answer_an_operation_outcome(world: World, path: str, code: str) -> None:
    client = _client(world.coordinator)

    response = client.get(path)
    head = client.head(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/fhir+json")
    assert _valid(response.json())["issue"][0]["code"] == code
    assert head.status_code == 404
    assert head["Content-Type"].startswith("application/fhir+json")
    # Anonymous requests are challenged as on every read (not as on the push); no user, no 404 either.
    anonymous = Client().get(path)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="concord-fhir"'
    assert _valid(anonymous.json())["issue"][0]["code"] == "login"


def test_a_write_to_an_unrouted_path_answers_an_operation_outcome(world: World) -> None:
    response = _client(world.coordinator).put(
        f"/fhir/Observation/{uuid.UUID(int=1)}", "{}", content_type="application/fhir+json"
    )

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/fhir+json")
    assert _valid(response.json())["issue"][0]["code"] == "not-supported"
    assert not InboundPayload.objects.filter(channel=InboundPayload.Channel.API).exists()


def test_plain_json_is_served_to_clients_asking_for_it(world: World) -> None:
    response = _client(world.coordinator).get("/fhir/Patient", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["resourceType"] == "Bundle"


# $everything ---------------------------------------------------------------------------------------


def test_everything_pages_through_every_linked_resource_without_duplicates_or_gaps(world: World) -> None:
    stored = _stored_resources(world.tony)
    assert {row.source for row in stored} == {world.hospital, world.clinic}

    pages = _pages(
        _client(world.coordinator), f"/fhir/Patient/{world.tony.external_id}/$everything", _count=7
    )

    entries = [entry for page in pages for entry in page["entry"]]
    assert entries[0]["resource"]["resourceType"] == "Patient"
    assert entries[0]["resource"]["id"] == str(world.tony.external_id)
    assert all(entry["resource"]["resourceType"] != "Patient" for entry in entries[1:])
    served = [entry["resource"]["id"] for entry in entries[1:]]
    assert served == [_served_id(row) for row in stored]  # all, each once, in storage order
    assert len(set(served)) == len(served)
    assert all(len(page["entry"]) == 7 for page in pages[:-1])
    assert {page["total"] for page in pages} == {len(stored) + 1}
    full_urls = [entry["fullUrl"] for entry in entries]
    assert len(set(full_urls)) == len(full_urls)
    assert full_urls[1] == f"http://testserver/fhir/{stored[0].resource_type}/{served[0]}"


def test_everything_with_one_entry_per_page_and_a_type_filter(world: World) -> None:
    path = f"/fhir/Patient/{world.tony.external_id}/$everything"
    client = _client(world.coordinator)
    immunizations = [row for row in _stored_resources(world.tony) if row.resource_type == "Immunization"]

    pages = _pages(client, path, _count=1, _type="Immunization")

    assert [len(page["entry"]) for page in pages] == [1] * (len(immunizations) + 1)
    assert [page["entry"][0]["resource"]["id"] for page in pages[1:]] == [
        _served_id(row) for row in immunizations
    ]
    assert _resources(_get(client, path, _count=0)) == []


def test_served_resources_point_to_the_golden_patient_and_name_their_source(world: World) -> None:
    bundle = _get(
        _client(world.coordinator), f"/fhir/Patient/{world.tony.external_id}/$everything", _count=500
    )
    resources = _resources(bundle)[1:]
    by_id = {resource["id"]: resource for resource in resources}
    row = next(
        row
        for row in _stored_resources(world.tony)
        if row.resource_type == "Observation" and row.source == world.clinic
    )
    original = row.resource

    served = by_id[_served_id(row)]

    assert served["subject"] == {"reference": f"Patient/{world.tony.external_id}"}
    assert served["code"] == original["code"]
    assert served["meta"]["source"] == f"urn:concord:source:clinic-ehr#Observation/{row.source_record_id}"
    assert {"system": SOURCE_TAG_SYSTEM, "code": "clinic-ehr", "display": "Clinic EHR"} in served["meta"][
        "tag"
    ]
    assert served["meta"]["versionId"] == "1"
    encounter_id = original["encounter"]["reference"].removeprefix("Encounter/")
    encounter = served_resource_id(
        source_slug="clinic-ehr", resource_type="Encounter", source_record_id=encounter_id
    )
    assert served["encounter"] == {"reference": f"Encounter/{encounter}"}
    assert encounter in by_id  # the Bundle's references resolve inside it
    for resource in resources:
        for element in ("subject", "patient"):
            if element in resource:
                assert resource[element]["reference"] == f"Patient/{world.tony.external_id}"


def test_everything_of_a_merged_away_id_is_the_survivors(world: World) -> None:
    from patients.matching.services import patient_merge

    patient_merge(actor=world.coordinator, survivor=world.tony, duplicate=world.agustin, reason="test")

    bundle = _get(
        _client(world.coordinator), f"/fhir/Patient/{world.agustin.external_id}/$everything", _count=500
    )

    assert bundle["entry"][0]["resource"]["id"] == str(world.tony.external_id)
    assert bundle["entry"][0]["resource"]["link"] == [
        {"other": {"reference": f"Patient/{world.agustin.external_id}"}, "type": "replaces"}
    ]
    subjects = {
        resource.get("subject", resource.get("patient", {})).get("reference")
        for resource in _resources(bundle)[1:]
    }
    assert subjects <= {f"Patient/{world.tony.external_id}", None}


def test_read_of_a_merged_away_id_is_the_survivor(world: World) -> None:
    from patients.matching.services import patient_merge

    patient_merge(actor=world.coordinator, survivor=world.tony, duplicate=world.agustin, reason="test")

    patient = _get(_client(world.coordinator), f"/fhir/Patient/{world.agustin.external_id}")

    assert patient["id"] == str(world.tony.external_id)
    assert patient["link"] == [
        {"other": {"reference": f"Patient/{world.agustin.external_id}"}, "type": "replaces"}
    ]
    assert list(AccessEvent.objects.values_list("purpose", "patient_ref")) == [
        ("FHIR Patient read", str(world.tony.external_id))
    ]


def test_a_patient_read_is_audited(world: World) -> None:
    _get(_client(world.coordinator), f"/fhir/Patient/{world.tony.external_id}")

    assert list(
        AccessEvent.objects.values_list("purpose", "patient_ref", "action", "channel", "actor_username")
    ) == [("FHIR Patient read", str(world.tony.external_id), "read", "fhir", "coordinator")]


def test_patient_search_of_a_merged_away_id_finds_the_survivors_resources(world: World) -> None:
    from patients.matching.services import patient_merge

    client = _client(world.coordinator)
    tony, agustin = str(world.tony.external_id), str(world.agustin.external_id)
    agustins_own = set(_ids(_get(client, "/fhir/Observation", patient=agustin, _count=500)))
    assert agustins_own
    patient_merge(actor=world.coordinator, survivor=world.tony, duplicate=world.agustin, reason="test")

    by_old_id = _get(client, "/fhir/Observation", patient=agustin, _count=500)
    by_survivor = _get(client, "/fhir/Observation", patient=tony, _count=500)

    assert set(_ids(by_old_id)) == set(_ids(by_survivor))
    assert agustins_own < set(_ids(by_old_id))
    assert {resource["subject"]["reference"] for resource in _resources(by_old_id)} == {f"Patient/{tony}"}


@pytest.mark.parametrize("resource_type", SEARCHABLE_TYPES)
def test_patient_reference_and_bare_id_find_the_same(world: World, resource_type: str) -> None:
    client = _client(world.coordinator)
    tony = str(world.tony.external_id)

    bare = _get(client, f"/fhir/{resource_type}", patient=tony, _count=500)
    typed = _get(client, f"/fhir/{resource_type}", patient=f"Patient/{tony}", _count=500)

    assert _ids(bare)
    assert _ids(typed) == _ids(bare)
    assert typed["total"] == bare["total"]


# Clinical search -----------------------------------------------------------------------------------


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [resource["id"] for resource in _resources(bundle)]


def test_code_search_finds_a_standard_coding_added_by_normalization(world: World) -> None:
    requests = [row for row in _stored_resources(world.tony) if row.resource_type == "MedicationRequest"]
    ingredient = {
        row.pk: [c for c in row.resource["medicationCodeableConcept"]["coding"][1:] if c["system"] == RXNORM]
        for row in requests
    }
    row = next(row for row in requests if ingredient[row.pk])
    code = ingredient[row.pk][0]["code"]
    assert row.code != code  # the indexed first coding is the product, not the ingredient
    with_code = {_served_id(r) for r in requests if code in {c["code"] for c in ingredient[r.pk]}}
    client = _client(world.coordinator)

    for value in (f"{RXNORM}|{code}", code, f"http://snomed.info/sct|{code},{RXNORM}|{code}"):
        bundle = _get(client, "/fhir/MedicationRequest", patient=str(world.tony.external_id), code=value)
        assert set(_ids(bundle)) == with_code, value
    assert _get(client, "/fhir/MedicationRequest", code=f"http://snomed.info/sct|{code}")["total"] == 0
    assert _get(client, "/fhir/MedicationRequest", code=f"{RXNORM}|{row.code}")["total"] >= 1


def test_code_and_category_search_on_observations_allergies_and_encounters(world: World) -> None:
    client = _client(world.coordinator)
    tony = str(world.tony.external_id)
    stored = _stored_resources(world.tony)

    def expected(resource_type: str, predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {
            _served_id(row)
            for row in stored
            if row.resource_type == resource_type and predicate(row.resource)
        }

    def codes(concept: Any) -> set[tuple[str, str]]:
        concepts = concept if isinstance(concept, list) else [concept]
        return {(c.get("system", ""), c["code"]) for item in concepts for c in item.get("coding", [])}

    heights = expected("Observation", lambda r: (LOINC, "8302-2") in codes(r["code"]))
    assert heights
    assert (
        set(_ids(_get(client, "/fhir/Observation", patient=tony, code=f"{LOINC}|8302-2", _count=500)))
        == heights
    )
    vitals = expected(
        "Observation",
        lambda r: (
            ("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")
            in codes(r.get("category", []))
        ),
    )
    assert (
        set(_ids(_get(client, "/fhir/Observation", patient=tony, category="vital-signs", _count=500)))
        == vitals
    )
    food = expected("AllergyIntolerance", lambda r: "food" in r.get("category", []))
    assert food
    assert set(_ids(_get(client, "/fhir/AllergyIntolerance", patient=tony, category="food"))) == food
    checkups = expected(
        "Encounter", lambda r: ("http://snomed.info/sct", "185349003") in codes(r.get("type", []))
    )
    for parameter in ("code", "type"):
        found = _get(client, "/fhir/Encounter", patient=tony, _count=500, **{parameter: "185349003"})
        assert set(_ids(found)) == checkups
    flu = expected(
        "Immunization", lambda r: ("http://hl7.org/fhir/sid/cvx", "140") in codes(r["vaccineCode"])
    )
    assert set(_ids(_get(client, "/fhir/Immunization", patient=tony, **{"vaccine-code": "140"}))) == flu


@pytest.mark.parametrize(
    ("value", "test"),
    [
        ("2016-07-19", lambda when: when.date().isoformat() == "2016-07-19"),
        ("eq2016-07", lambda when: when.strftime("%Y-%m") == "2016-07"),
        ("ge2016-07-19", lambda when: when.date().isoformat() >= "2016-07-19"),
        ("gt2016-07-19", lambda when: when.date().isoformat() > "2016-07-19"),
        ("le2016-07-19", lambda when: when.date().isoformat() <= "2016-07-19"),
        ("lt2016-07-19", lambda when: when.date().isoformat() < "2016-07-19"),
        ("ne2016", lambda when: when.year != 2016),
        ("ge2016-07-19T19:47:23Z", lambda when: when.isoformat() >= "2016-07-19T19:47:23+00:00"),
        ("lt2016-07-19T15:47:23-04:00", lambda when: when.isoformat() < "2016-07-19T19:47:23+00:00"),
    ],
)
def test_date_prefixes(world: World, value: str, test: Callable[[datetime], bool]) -> None:
    stored = [row for row in _stored_resources(world.tony) if row.resource_type == "Observation"]
    expected = {_served_id(row) for row in stored if row.effective_at is not None and test(row.effective_at)}
    assert 0 < len(expected) < len(stored)

    bundle = _get(
        _client(world.coordinator),
        "/fhir/Observation",
        patient=str(world.tony.external_id),
        date=value,
        _count=500,
    )

    assert set(_ids(bundle)) == expected


def test_date_range_is_two_prefixed_parameters(world: World) -> None:
    stored = [row for row in _stored_resources(world.tony) if row.resource_type == "Observation"]
    expected = {
        _served_id(row)
        for row in stored
        if row.effective_at and "2014" <= row.effective_at.date().isoformat() < "2017"
    }
    client = _client(world.coordinator)

    response = client.get(
        f"/fhir/Observation?patient={world.tony.external_id}&date=ge2014-01-01&date=lt2017&_count=500"
    )

    assert set(_ids(_valid(response.json()))) == expected


@pytest.mark.parametrize("sort", ["-date", "date"])
def test_sorted_search_pages_without_duplicates_or_gaps(world: World, sort: str) -> None:
    stored = [row for row in _stored_resources(world.tony) if row.resource_type == "Observation"]

    pages = _pages(
        _client(world.coordinator),
        "/fhir/Observation",
        patient=str(world.tony.external_id),
        _sort=sort,
        _count=9,
    )

    served = [resource for page in pages for resource in _resources(page)]
    assert sorted(resource["id"] for resource in served) == sorted(_served_id(row) for row in stored)
    times = [resource["effectiveDateTime"] for resource in served]
    assert times == sorted(times, reverse=sort == "-date")
    assert {page["total"] for page in pages} == {len(stored)}


def test_a_new_version_of_a_resource_is_found_by_its_new_code_only(world: World, land: Land) -> None:
    row = next(
        row
        for row in _stored_resources(world.tony)
        if row.resource_type == "Condition" and row.source == world.hospital
    )
    changed = json.loads(json.dumps(row.resource))
    changed["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}
    assert land(world.hospital, as_bytes(changed)).status == InboundPayload.Status.ACCEPTED
    client = _client(world.coordinator)
    old_code = row.resource["code"]["coding"][0]["code"]

    found = _ids(_get(client, "/fhir/Condition", patient=str(world.tony.external_id), code="44054006"))
    old = _ids(_get(client, "/fhir/Condition", patient=str(world.tony.external_id), code=old_code))

    assert _served_id(row) in found
    assert _served_id(row) not in old


def test_a_stewards_new_map_makes_stored_resources_searchable_by_the_standard_code(
    world: World, land: Land, django_capture_on_commit_callbacks: Any
) -> None:
    from governance.services import terminology_map_create

    patient_id = json.loads(_bundle_bytes(TONY_ID))["entry"][0]["resource"]["id"]
    glucose = {
        "resourceType": "Observation",
        "id": "lab-glu-1",
        "status": "final",
        "code": {"coding": [{"system": "http://hospital.example/lab", "code": "GLU"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-02T09:30:00Z",
        "valueQuantity": {"value": 5.5, "unit": "mmol/L"},
    }
    assert land(world.hospital, as_bytes(glucose)).status == InboundPayload.Status.ACCEPTED
    client = _client(world.coordinator)
    assert _get(client, "/fhir/Observation", code=f"{LOINC}|2345-7")["total"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        terminology_map_create(
            actor=world.coordinator,
            source=world.hospital,
            local_system="http://hospital.example/lab",
            local_code="GLU",
            standard_system=LOINC,
            standard_code="2345-7",
        )

    found = _resources(_get(client, "/fhir/Observation", code=f"{LOINC}|2345-7"))
    assert [resource["meta"]["source"] for resource in found] == [
        "urn:concord:source:hospital-ehr#Observation/lab-glu-1"
    ]
    assert found[0]["code"]["coding"][0] == {"system": "http://hospital.example/lab", "code": "GLU"}
    assert found[0]["subject"] == {"reference": f"Patient/{world.tony.external_id}"}


def test_free_text_blood_pressure_and_a_brand_name_are_found_by_standard_codes(
    world: World, land: Land
) -> None:
    """The searches the terminology issue names: LOINC 85354-9 finds a blood pressure sent as text, RxNorm
    83367 (atorvastatin) finds a prescription that says only Lipitor."""
    patient_id = json.loads(_bundle_bytes(TONY_ID))["entry"][0]["resource"]["id"]
    text_pressure = {
        "resourceType": "Observation",
        "id": "bp-text-1",
        "status": "final",
        "category": VITAL_SIGNS_CATEGORY,
        "code": {"text": "Blood pressure"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-06-01T10:00:00Z",
        "valueString": "BP 142/91",
    }
    lipitor = {
        "resourceType": "MedicationRequest",
        "id": "rx-lipitor-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Lipitor 20 MG Oral Tablet"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2024-06-01",
    }
    for resource in (text_pressure, lipitor):
        assert land(world.hospital, as_bytes(resource)).status == InboundPayload.Status.ACCEPTED
    client = _client(world.coordinator)
    tony = str(world.tony.external_id)

    pressures = _resources(_get(client, "/fhir/Observation", patient=tony, code=f"{LOINC}|85354-9"))
    statins = _resources(_get(client, "/fhir/MedicationRequest", patient=tony, code=f"{RXNORM}|83367"))

    found = next(r for r in pressures if r["meta"]["source"].endswith("#Observation/bp-text-1"))
    assert found["code"]["text"] == "Blood pressure"
    assert {(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in found["component"]} == {
        ("8480-6", 142),
        ("8462-4", 91),
    }
    assert [
        r["medicationCodeableConcept"]["text"] for r in statins if "rx-lipitor-1" in r["meta"]["source"]
    ] == ["Lipitor 20 MG Oral Tablet"]


def test_codings_of_resources_stored_before_the_index_are_backfilled(world: World) -> None:
    before = sorted(ResourceCoding.objects.values_list("resource_id", "element", "system", "code"))
    assert before
    ResourceCoding.objects.all().delete()
    migration = importlib.import_module("patients.migrations.0007_resource_coding")

    migration.codings_backfill(apps, None)

    assert sorted(ResourceCoding.objects.values_list("resource_id", "element", "system", "code")) == before


# A real client ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fhirclient_reads_the_api_over_http(world: World, live_server: Any) -> None:
    """SMART on FHIR's Python client (strict R4 models) against a live server, with an API token."""
    from fhirclient import client as fhir_client
    from fhirclient.models.bundle import Bundle
    from fhirclient.models.fhirsearch import FHIRSearch
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient as FhirPatient

    _, token = api_token_issue(actor=None, user=world.coordinator, name="fhirclient")
    smart = fhir_client.FHIRClient(
        settings={"app_id": "concord-tests", "api_base": f"{live_server.url}/fhir/"}
    )
    smart.server.session.headers["Authorization"] = f"Bearer {token}"
    server = smart.server
    try:
        statement = server.capabilityStatement
        assert statement.fhirVersion == "4.0.1"
        patient_support = next(
            resource for resource in statement.rest[0].resource if resource.type == "Patient"
        )
        assert {operation.name for operation in patient_support.operation} == {"match", "everything"}

        found = list(
            FHIRSearch(FhirPatient, {"family": "douglas", "birthdate": "1972-04-18"}).perform_resources_iter(
                server
            )
        )
        assert [patient.id for patient in found] == [str(world.tony.external_id)]
        assert found[0].name[0].family == "Douglas"
        assert FhirPatient.read(found[0].id, server).birthDate.isostring == "1972-04-18"

        page = Bundle.read_from(f"Patient/{world.tony.external_id}/$everything?_count=25", server)
        pages = [page]
        while next_url := next((link.url for link in page.link or [] if link.relation == "next"), None):
            page = Bundle.read_from(next_url, server)
            pages.append(page)
        entries = [entry.resource for page in pages for entry in page.entry]
        assert len(pages) > 2
        assert entries[0].resource_type == "Patient"
        assert len(entries) == pages[0].total == len({(entry.resource_type, entry.id) for entry in entries})
        assert len(entries) == len(_stored_resources(world.tony)) + 1

        search = FHIRSearch(Observation, {"patient": found[0].id, "code": f"{LOINC}|8302-2", "_count": "2"})
        heights = [
            observation for bundle in search.perform_iter(server) for observation in bundle.entry or []
        ]
        expected = [
            row
            for row in _stored_resources(world.tony)
            if row.resource_type == "Observation" and row.code == "8302-2"
        ]
        assert len(heights) == len(expected) > 2
        assert {entry.resource.subject.reference for entry in heights} == {
            f"Patient/{world.tony.external_id}"
        }
        assert {entry.resource.code.coding[0].code for entry in heights} == {"8302-2"}
    finally:
        # The live server's request thread holds a database connection while the HTTP connection is kept
        # alive; closing it lets the test database be dropped.
        server.session.close()
