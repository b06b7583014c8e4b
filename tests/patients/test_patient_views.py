"""Patient search and the unified patient page, on PostgreSQL, with data landed through the real pipeline."""

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.models import AccessEvent
from core.permissions import object_permission_grant
from core.roles import CARE_COORDINATOR, EXECUTIVE
from patients.chart import patient_chart_get
from patients.models import (
    InboundPayload,
    Patient,
    PatientConflict,
    PatientLink,
    ResourceCoding,
    Source,
    SourcePatient,
    SourceResource,
    SourceResourcesChange,
)
from patients.page_cache import CACHE_ALIAS
from patients.services import source_create
from tests.patients.conftest import VITAL_SIGNS_CATEGORY, as_bytes, blood_pressure, patient, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

Land = Callable[..., InboundPayload]


def _weight(resource_id: str, subject: str, *, kilograms: float, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "category": VITAL_SIGNS_CATEGORY,
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": kilograms,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


def _sources() -> tuple[Source, Source, Source]:
    return (
        source_create(actor=None, slug="hospital-ehr", name="Hospital EHR", kind=Source.Kind.EHR),
        source_create(actor=None, slug="clinic-ehr", name="Clinic EHR", kind=Source.Kind.EHR),
        source_create(actor=None, slug="crm", name="Patient CRM", kind=Source.Kind.CRM),
    )


def _alma_at_the_clinic() -> dict[str, Any]:
    """Alma's record in the clinic EHR (sent again with more resources by several tests)."""
    record = patient("c-1", identifier=[{"system": "urn:oid:2.16.840.1.113883.3.1001.2", "value": "C-77"}])
    record["name"] = [{"family": "QUIGLEY", "given": ["Alma", "June"]}]
    return record


@pytest.fixture
def alma(land: Land) -> Patient:
    """Alma Quigley in three systems (the CRM has a newer phone), with a blood pressure in each EHR."""
    hospital, clinic, crm = _sources()
    first = patient("h-1")
    land(hospital, as_bytes(transaction(first, blood_pressure("bp-h", "urn:uuid:h-1"))))
    second = _alma_at_the_clinic()
    land(
        clinic,
        as_bytes(
            transaction(
                second,
                blood_pressure("bp-c", "urn:uuid:c-1", when="2024-05-02T09:30:00-05:00"),
                blood_pressure("bp-same", "urn:uuid:c-1"),  # the hospital's reading, reported again
                _weight("w-c", "urn:uuid:c-1", kilograms=71.5, when="2024-05-02T09:35:00-05:00"),
            )
        ),
    )
    third = patient("crm-9", telecom=[{"system": "phone", "value": "617.555.0199", "use": "mobile"}])
    third["identifier"] = [{"system": "urn:concord:crm", "value": "9"}]
    land(crm, as_bytes(transaction(third)))
    other = patient("h-2", name=[{"family": "Garcia", "given": ["Maria"]}], birthDate="1980-02-02")
    other["telecom"] = [{"system": "phone", "value": "508-555-0100"}]
    land(hospital, as_bytes(transaction(other)))
    found = Patient.objects.get(links__source_patient__source_record_id="h-1")
    assert found.links.count() == 3
    return found


def _land_at_the_hospital(land: Land, *resources: dict[str, Any]) -> None:
    """More of Alma's hospital record (``alma``'s h-1), landed through the pipeline."""
    land(Source.objects.get(slug="hospital-ehr"), as_bytes(transaction(patient("h-1"), *resources)))


def _search(client: Client, **params: str) -> str:
    response = client.get("/patients/search/", params)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "Alma Quigley",
        "alma quigly",
        "Alma Kwigley",
        "Quigley, Alma",
        "(617) 555-0134",
        "+1 617 555 0199",
        "MRN-h-1",
    ],
)
def test_search_finds_the_patient_by_name_variants_phone_and_identifier(
    alma: Patient, coordinator_client: Client, query: str
) -> None:
    html = _search(coordinator_client, q=query)

    assert f"/patients/{alma.external_id}/" in html
    assert "Maria" not in html


def test_search_finds_patients_by_email_in_a_record_or_the_golden_record(
    alma: Patient, land: Land, coordinator_client: Client
) -> None:
    crm = Source.objects.get(slug="crm")
    bea = patient(
        "crm-10",
        name=[{"family": "Quinn", "given": ["Bea"]}],
        birthDate="1975-07-07",
        telecom=[{"system": "email", "value": "Bea.Quinn@Example.org"}],
    )
    land(crm, as_bytes(transaction(bea)))
    found = Patient.objects.get(links__source_patient__source_record_id="crm-10")
    assert found.email == "bea.quinn@example.org"

    for query in ("bea.quinn@example.org", "BEA.Quinn@example.ORG"):
        html = _search(coordinator_client, q=query)
        assert f"/patients/{found.external_id}/" in html
        assert f"/patients/{alma.external_id}/" not in html
    assert "No patient you may see" in _search(coordinator_client, q="someone.else@example.org")


def test_search_finds_a_record_number_of_digits_that_reads_as_a_phone_number(
    alma: Patient, land: Land, coordinator_client: Client
) -> None:
    hospital = Source.objects.get(slug="hospital-ehr")
    cy = patient(
        "h-20",
        identifier=[{"system": "urn:oid:2.16.840.1.113883.3.1001.1", "value": "6175550177"}],
        name=[{"family": "Ortiz", "given": ["Cy"]}],
        birthDate="1990-01-02",
        telecom=[{"system": "phone", "value": "(508) 555-0111", "use": "home"}],
    )
    land(hospital, as_bytes(transaction(cy)))
    found = Patient.objects.get(links__source_patient__source_record_id="h-20")

    html = _search(coordinator_client, q="6175550177")
    assert f"/patients/{found.external_id}/" in html
    assert f"/patients/{alma.external_id}/" not in html
    # Written as a phone number, it is a phone number only: Alma's is (617) 555-0134.
    assert f"/patients/{alma.external_id}/" in _search(coordinator_client, q="6175550134")
    assert f"/patients/{found.external_id}/" in _search(coordinator_client, q="(508) 555-0111")


def test_search_by_birth_date_and_shows_sources(alma: Patient, coordinator_client: Client) -> None:
    html = _search(coordinator_client, q="Quigley", birth_date="1961-04-12")

    assert f"/patients/{alma.external_id}/" in html
    assert html.count('class="source-badge"') == 3
    assert "No patient you may see" in _search(coordinator_client, q="Quigley", birth_date="1961-04-13")


def test_search_results_escape_what_the_sources_sent(alma: Patient, coordinator_client: Client) -> None:
    """The result rows are written without the template engine: every value is still escaped."""
    Patient.objects.filter(pk=alma.pk).update(
        given_names='<script>alert("x")</script>', family_name="O'Brien & Sons", city="<b>Springfield</b>"
    )

    html = _search(coordinator_client, q="(617) 555-0134")

    assert "<script>" not in html
    assert "<b>Springfield" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Brien &amp; Sons" in html
    assert "<td>&lt;b&gt;Springfield&lt;/b&gt;</td>" in html
    assert f'<a href="/patients/{alma.external_id}/">' in html
    assert "<td>1961-04-12</td>" in html


def test_search_with_htmx_returns_only_the_results(alma: Patient, coordinator_client: Client) -> None:
    response = coordinator_client.get("/patients/search/", {"q": "Alma Quigley"}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert "<table" in html
    assert "<html" not in html


def test_search_results_are_not_kept_by_the_browser_and_vary_with_htmx(
    alma: Patient, coordinator_client: Client
) -> None:
    fragment = coordinator_client.get("/patients/search/", {"q": "Alma Quigley"}, HTTP_HX_REQUEST="true")
    page = coordinator_client.get(f"/patients/{alma.external_id}/")

    for response in (fragment, page):
        assert "no-store" in response["Cache-Control"]
        assert "private" in response["Cache-Control"]
    # The same address answers a fragment or a page: a cache must tell them apart by the header.
    assert "HX-Request" in fragment["Vary"]
    # htmx keeps no copy of a page in the browser's storage for the Back button, and reloads on a miss.
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page.content.decode())
    assert config is not None
    settings = json.loads(config[1])
    assert (settings["historyCacheSize"], settings["refreshOnHistoryMiss"]) == (0, True)


def test_search_restored_by_htmx_history_is_the_whole_page(alma: Patient, coordinator_client: Client) -> None:
    response = coordinator_client.get(
        "/patients/search/",
        {"q": "Alma Quigley"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )

    html = response.content.decode()
    assert "<html" in html
    assert f"/patients/{alma.external_id}/" in html


def _encounter(resource_id: str, class_code: str, start: str, end: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": resource_id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class_code},
        "type": [{"text": f"{class_code} visit"}],
        "subject": {"reference": "urn:uuid:h-1"},
        "period": {"start": start, "end": end},
    }


def test_encounter_timeline_names_the_class_and_shows_the_discharge_in_local_time(
    alma: Patient, land: Land, coordinator_client: Client
) -> None:
    _land_at_the_hospital(
        land,
        _encounter("enc-ed", "EMER", "2024-03-02T09:30:00-05:00", "2024-03-02T11:45:00-05:00"),
        _encounter("enc-amb", "AMB", "2024-04-10T13:00:00Z", "2024-04-10T13:20:00Z"),
    )

    response = coordinator_client.get(f"/patients/{alma.external_id}/sections/encounters/")

    assert response.status_code == 200
    rows = re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td([^>]*)>([^<]*)</td>", response.content.decode())
    # Start and discharge alike in the site's time zone (UTC here), not the source's text.
    assert ("2024-03-02 14:30 \u2013 2024-03-02 16:45", ' title="EMER"', "Emergency") in rows
    assert ("2024-04-10 13:00 \u2013 2024-04-10 13:20", ' title="AMB"', "Outpatient") in rows


def test_search_shows_only_patients_the_user_may_see(
    alma: Patient, role_users: dict[str, User], django_user_model: type[User]
) -> None:
    nurse = django_user_model.objects.create_user("nurse", password="x-long-enough-password")
    nurse.user_permissions.add(Permission.objects.get(codename="access_patients"))
    client = Client()
    client.force_login(nurse)

    assert f"/patients/{alma.external_id}/" not in _search(client, q="Alma Quigley")
    assert client.get(f"/patients/{alma.external_id}/").status_code == 404

    object_permission_grant(perm="patients.view_patient", grantee=nurse, obj=alma)

    assert f"/patients/{alma.external_id}/" in _search(client, q="Alma Quigley")
    assert client.get(f"/patients/{alma.external_id}/").status_code == 200


def test_patient_page_authorization_matrix(alma: Patient, role_users: dict[str, User]) -> None:
    url = f"/patients/{alma.external_id}/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    executive = Client()
    executive.force_login(role_users[EXECUTIVE])
    assert executive.get(url).status_code == 403
    coordinator = Client()
    coordinator.force_login(role_users[CARE_COORDINATOR])
    before = AccessEvent.objects.count()

    assert coordinator.get(url).status_code == 200
    assert AccessEvent.objects.count() == before + 1
    event = AccessEvent.objects.latest("occurred_at")
    assert (event.patient_ref, event.actor_username, event.action) == (
        str(alma.external_id),
        "coordinator",
        AccessEvent.Action.READ,
    )


def test_patient_page_shows_sources_provenance_and_merged_facts(
    alma: Patient, coordinator_client: Client
) -> None:
    html = coordinator_client.get(f"/patients/{alma.external_id}/").content.decode()

    for name in ("Hospital EHR", "Clinic EHR", "Patient CRM"):
        assert f">{name}</span>" in html
    # The CRM is the most trusted source for contact details: its newer phone wins, and says why.
    assert "+16175550199" in html
    phone = re.search(r'<dd data-field="phone">.*?</dd>', html, re.S)
    assert phone is not None
    # Where the value came from: the source by name, the record, when, and the rule that chose it.
    provenance = re.search(
        r"From <strong>Patient CRM</strong> \(crm record ([^)]+)\), (\d{4}-\d\d-\d\d); chosen because: ([^<]+)\.",
        phone[0],
    )
    assert provenance is not None, phone[0]
    assert provenance[3].strip()
    assert f'title="Patient CRM, {provenance[2]}, {provenance[3]}"' in phone[0]
    # The same reading from two EHRs is one row with two badges; the clinic's own reading is another row.
    assert html.count("128/82 mmHg") == 2
    assert "Blood pressure (systolic and diastolic)" in html
    assert "Weight and BMI" in html
    # What later work fills: a section each, saying there is nothing yet.
    for section, empty in (
        ("engagement", "No messages, calls or campaign steps recorded for this patient yet."),
        ("care-team", "No care team recorded for this patient yet."),
        ("consent", "No consent recorded for this patient yet."),
    ):
        assert re.search(
            rf'data-section="{section}">\s*<h2[^>]*>[^<]+</h2>\s*<p class="empty-state">{empty}</p>', html
        )


def test_search_audits_every_patient_listed(alma: Patient, coordinator_client: Client) -> None:
    _search(coordinator_client, q="Alma Quigley")

    event = AccessEvent.objects.get(action=AccessEvent.Action.SEARCH)
    assert event.patient_ref == str(alma.external_id)


@pytest.mark.postgres
@pytest.mark.parametrize(("query", "statements"), [("Alma Quigly", 3), ("Quigley", 3), ("(617) 555-0134", 2)])
def test_a_search_reads_and_records_what_it_lists_in_few_statements(
    alma: Patient, coordinator_client: Client, query: str, statements: int
) -> None:
    """PostgreSQL: the session with its user, the candidates (names), then the rows shown, which record
    their own access; nothing else."""
    coordinator_client.get("/patients/")

    with CaptureQueriesContext(connection) as queries:
        html = _search(coordinator_client, q=query)

    assert f"/patients/{alma.external_id}/" in html
    expected = statements if connection.vendor == "postgresql" else statements + 3
    assert len(queries.captured_queries) == expected, [
        query["sql"][:60] for query in queries.captured_queries
    ]
    assert list(
        AccessEvent.objects.filter(action=AccessEvent.Action.SEARCH).values_list("patient_ref", flat=True)
    ) == [str(alma.external_id)]


def test_patient_page_query_count_does_not_grow_with_the_record(
    alma: Patient, coordinator_client: Client, land: Land
) -> None:
    url = f"/patients/{alma.external_id}/"
    coordinator_client.get(url)
    caches[CACHE_ALIAS].clear()  # measure a page drawn from the database, not from the page cache
    with CaptureQueriesContext(connection) as small:
        coordinator_client.get(url)
    clinic = Source.objects.get(slug="clinic-ehr")
    more = [
        blood_pressure(f"bp-more-{index}", "urn:uuid:c-1", when=f"2023-01-{index + 1:02d}T08:00:00Z")
        for index in range(25)
    ] + [
        _weight(
            f"w-more-{index}", "urn:uuid:c-1", kilograms=70 + index, when=f"2022-02-{index + 1:02d}T08:00:00Z"
        )
        for index in range(25)
    ]
    second = _alma_at_the_clinic()
    land(clinic, as_bytes(transaction(second, *more)))
    with CaptureQueriesContext(connection) as large:
        response = coordinator_client.get(url)

    shown = re.search(
        r'id="vitals-heading" tabindex="-1">Vital signs <small>\((\d+)\)', response.content.decode()
    )
    assert shown is not None
    assert int(shown.group(1)) > 50
    assert len(large.captured_queries) == len(small.captured_queries)


def test_lab_chart_fragment_for_a_picked_code(alma: Patient, coordinator_client: Client) -> None:
    response = coordinator_client.get(
        f"/patients/{alma.external_id}/lab-chart/", {"code": "29463-7"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    # Weight is a vital sign, not a lab: nothing to draw for it here.
    assert "data-plotly-chart" not in response.content.decode()


def _uncategorised(
    resource_id: str, code: str, display: str, value: float, unit: str, when: str
) -> dict[str, Any]:
    """A result as an HL7 v2 results feed becomes FHIR: no category."""
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": "urn:uuid:h-1"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit},
    }


def test_results_sent_without_a_category_are_labs_and_can_be_charted(
    alma: Patient, land: Land, coordinator_client: Client
) -> None:
    _land_at_the_hospital(
        land,
        _uncategorised("glu-1", "2345-7", "Glucose", 5.4, "mmol/L", "2024-05-01T08:00:00Z"),
        _uncategorised("glu-2", "2345-7", "Glucose", 6.1, "mmol/L", "2024-06-01T08:00:00Z"),
        _uncategorised("wt-1", "29463-7", "Body weight", 71.5, "kg", "2024-05-01T08:00:00Z"),
    )

    labs = coordinator_client.get(f"/patients/{alma.external_id}/sections/labs/").content.decode()
    vitals = coordinator_client.get(f"/patients/{alma.external_id}/sections/vitals/").content.decode()
    page = coordinator_client.get(f"/patients/{alma.external_id}/").content.decode()
    chart = coordinator_client.get(
        f"/patients/{alma.external_id}/lab-chart/", {"code": "2345-7"}, HTTP_HX_REQUEST="true"
    ).content.decode()

    assert labs.count("Glucose") == 2
    assert "Body weight" not in labs
    assert "Body weight" in vitals
    assert re.search(r'<option value="2345-7"[^>]*>\s*Glucose', page)
    assert "data-plotly-chart" in chart


def test_merged_away_patient_id_opens_the_survivor(alma: Patient, coordinator_client: Client) -> None:
    from patients.matching.services import patient_merge

    other = Patient.objects.exclude(pk=alma.pk).get(is_active=True)
    patient_merge(actor=None, survivor=alma, duplicate=other, reason="test: same person")

    response = coordinator_client.get(f"/patients/{other.external_id}/")

    assert response.status_code == 200
    assert "was merged into this one" in response.content.decode()


def _medication(
    resource_id: str, subject: str, concept: dict[str, Any], status: str = "active"
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": resource_id,
        "status": status,
        "intent": "order",
        "subject": {"reference": subject},
        "authoredOn": "2024-03-02T09:30:00Z",
        "medicationCodeableConcept": concept,
    }


def _free_text_blood_pressure(resource_id: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "category": VITAL_SIGNS_CATEGORY,
        "code": {"text": "Blood pressure"},
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-06-01T10:00:00Z",
        "valueString": "BP 142/91",
    }


def test_brand_and_generic_from_two_sources_are_one_medication_flagged_and_bp_is_one_series(
    land: Land, coordinator_client: Client
) -> None:
    """Issue 6's scenario: text BP and Lipitor in one source, a coded BP panel and atorvastatin in another."""
    hospital, clinic, _ = _sources()
    land(
        hospital,
        as_bytes(
            transaction(
                patient("h-1"),
                _free_text_blood_pressure("bp-text", "urn:uuid:h-1"),
                _medication("m-h", "urn:uuid:h-1", {"text": "Lipitor 20 MG Oral Tablet"}),
            )
        ),
    )
    atorvastatin = {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "617312",
                "display": "atorvastatin 10 MG Oral Tablet",
            }
        ]
    }
    land(
        clinic,
        as_bytes(
            transaction(
                patient("c-1", identifier=[{"system": "urn:oid:clinic", "value": "C-1"}]),
                blood_pressure("bp-coded", "urn:uuid:c-1"),
                _medication("m-c", "urn:uuid:c-1", atorvastatin),
            )
        ),
    )
    alma = Patient.objects.get(links__source_patient__source_record_id="h-1")
    assert alma.links.count() == 2

    chart = patient_chart_get(alma)

    assert [medication.ingredient.lower() for medication in chart.medications] == ["atorvastatin"]
    reconciled = chart.medications[0]
    assert sorted(source.slug for source in reconciled.sources) == ["clinic-ehr", "hospital-ehr"]
    assert reconciled.flags == ["duplicate therapy: active in several sources under different products"]
    # Both readings, the free-text one included, are points of the one systolic series.
    assert sorted(point.value for point in chart.series["8480-6"]) == [128.0, 142.0]
    assert sorted({point.source for point in chart.series["8480-6"]}) == ["clinic-ehr", "hospital-ehr"]
    html = coordinator_client.get(f"/patients/{alma.external_id}/").content.decode()
    assert "duplicate therapy" in html


def _condition(resource_id: str, subject: str, concept: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "code": concept,
        "subject": {"reference": subject},
        "onsetDateTime": "2019-01-10T00:00:00Z",
    }


def _allergy(resource_id: str, subject: str, concept: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": resource_id,
        "patient": {"reference": subject},
        "code": concept,
        "criticality": "high",
    }


def _heart_rate(resource_id: str, subject: str, *, when: str, beats: float = 72) -> dict[str, Any]:
    reading = _weight(resource_id, subject, kilograms=beats, when=when)
    reading["code"] = {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}
    reading["valueQuantity"] = {
        "value": beats,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    return reading


def test_problems_allergies_and_readings_from_two_sources_are_one_fact_each(land: Land) -> None:
    """SNOMED vs ICD-10-CM vs text for one condition and one allergen; one reading stamped minutes apart."""
    hospital, clinic, _ = _sources()
    land(
        hospital,
        as_bytes(
            transaction(
                patient("h-1"),
                _condition(
                    "cond-h",
                    "urn:uuid:h-1",
                    {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}], "text": "HTN"},
                ),
                _allergy(
                    "alg-h",
                    "urn:uuid:h-1",
                    {"coding": [{"system": "http://snomed.info/sct", "code": "764146007"}]},
                ),
                _heart_rate("hr-h", "urn:uuid:h-1", when="2024-06-01T10:00:00Z"),
                _heart_rate("hr-h-later", "urn:uuid:h-1", when="2024-06-01T10:20:00Z"),
            )
        ),
    )
    land(
        clinic,
        as_bytes(
            transaction(
                patient("c-1", identifier=[{"system": "urn:oid:clinic", "value": "C-1"}]),
                _condition(
                    "cond-c",
                    "urn:uuid:c-1",
                    {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
                ),
                _allergy("alg-c", "urn:uuid:c-1", {"text": "Penicillin allergy"}),
                _heart_rate("hr-c", "urn:uuid:c-1", when="2024-06-01T10:07:00Z"),
                _heart_rate("hr-c-next-day", "urn:uuid:c-1", when="2024-06-02T10:07:00Z"),
            )
        ),
    )
    alma = Patient.objects.get(links__source_patient__source_record_id="h-1")
    assert alma.links.count() == 2

    chart = patient_chart_get(alma)

    assert [(fact.display, sorted(s.slug for s in fact.sources)) for fact in chart.problems] == [
        ("Hypertension", ["clinic-ehr", "hospital-ehr"])
    ]
    assert [(fact.display, sorted(s.slug for s in fact.sources)) for fact in chart.allergies] == [
        ("Penicillin", ["clinic-ehr", "hospital-ehr"])
    ]
    heart_rates = [fact for fact in chart.vitals if fact.code == "8867-4"]
    # The clinic's 10:07 reading is the hospital's 10:00 one (nearer than the hospital's 10:20, a reading
    # of its own), shown at the more recent time; the next day's is another reading.
    assert sorted((fact.when.isoformat(), len(fact.sources)) for fact in heart_rates if fact.when) == [
        ("2024-06-01T10:07:00+00:00", 2),
        ("2024-06-01T10:20:00+00:00", 1),
        ("2024-06-02T10:07:00+00:00", 1),
    ]
    assert len(chart.series["8867-4"]) == 3


def test_long_sections_show_the_most_recent_facts_and_fetch_the_rest(
    alma: Patient, coordinator_client: Client, land: Land
) -> None:
    clinic = Source.objects.get(slug="clinic-ehr")
    second = _alma_at_the_clinic()
    weights = [
        _weight(f"w-{index}", "urn:uuid:c-1", kilograms=60 + index, when=f"2021-03-{index + 1:02d}T08:00:00Z")
        for index in range(28)
    ]
    land(clinic, as_bytes(transaction(second, *weights)))
    vitals = len(patient_chart_get(alma).vitals)
    assert vitals > 28

    page = coordinator_client.get(f"/patients/{alma.external_id}/").content.decode()
    section = coordinator_client.get(
        f"/patients/{alma.external_id}/sections/vitals/", HTTP_HX_REQUEST="true"
    ).content.decode()

    shown = page.split('data-section="vitals"')[1].split("</section>")[0]
    assert shown.count("<tr>") == 20 + 1  # the header row and the 20 most recent
    assert f"Show all {vitals}" in shown
    assert f'hx-get="/patients/{alma.external_id}/sections/vitals/"' in shown
    assert section.count("<tr>") == vitals + 1
    assert ">87 kg<" in section  # the most recent weight, 2021-03-28
    assert ">60 kg<" in section  # and the oldest
    assert "Show all" not in section


def test_section_fragment_authorization_matrix(alma: Patient, role_users: dict[str, User]) -> None:
    url = f"/patients/{alma.external_id}/sections/labs/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    executive = Client()
    executive.force_login(role_users[EXECUTIVE])
    assert executive.get(url).status_code == 403
    outsider = User.objects.create_user(username="outsider")
    outsider.user_permissions.add(Permission.objects.get(codename="access_patients"))
    other = Client()
    other.force_login(outsider)
    coordinator = Client()
    coordinator.force_login(role_users[CARE_COORDINATOR])
    before = AccessEvent.objects.count()

    assert other.get(url).status_code == 404  # may open the area, not this patient
    assert coordinator.get(f"/patients/{alma.external_id}/sections/secrets/").status_code == 404
    assert AccessEvent.objects.count() == before
    assert coordinator.get(url).status_code == 200
    event = AccessEvent.objects.get(purpose="patient page: all labs")
    assert (event.patient_ref, event.actor_username) == (str(alma.external_id), "coordinator")


def _clinical_part(html: str) -> str:
    return html[html.index('id="charts-heading"') : html.index('id="later-heading"')]


def test_an_unchanged_record_is_drawn_once_and_every_kind_of_change_redraws_it(
    alma: Patient, coordinator_client: Client, land: Land
) -> None:
    url = f"/patients/{alma.external_id}/"
    first = coordinator_client.get(url).content.decode()
    with CaptureQueriesContext(connection) as drawn:
        again = coordinator_client.get(url).content.decode()
    caches[CACHE_ALIAS].clear()
    with CaptureQueriesContext(connection) as redrawn:
        coordinator_client.get(url)
    # The second view reused the first one's rendering (chart element ids are random per rendering) ...
    assert _clinical_part(again) == _clinical_part(first)
    assert len(drawn.captured_queries) < len(redrawn.captured_queries)
    # ... and is audited all the same.
    assert AccessEvent.objects.filter(patient_ref=str(alma.external_id), purpose="patient page").count() == 3
    assert "71.5 kg" in first

    # A newer version of a resource, landed through the pipeline.
    clinic = Source.objects.get(slug="clinic-ehr")
    second = _alma_at_the_clinic()
    land(
        clinic,
        as_bytes(
            transaction(
                second, _weight("w-c", "urn:uuid:c-1", kilograms=72.25, when="2024-05-02T09:35:00-05:00")
            )
        ),
    )
    page = _clinical_part(coordinator_client.get(url).content.decode())
    assert "72.25 kg" in page
    assert "71.5 kg" not in page

    # A change in place that no service made (same transaction as the rendering here: a later command).
    SourceResource.objects.filter(source_record_id="w-c").update(status="amended")
    assert "<td>amended</td>" in _clinical_part(coordinator_client.get(url).content.decode())

    # The golden record changed in place, by SQL no service wrote: the demographics say so.
    record = Patient.objects.get(pk=alma.pk).record
    Patient.objects.filter(pk=alma.pk).update(record={**record, "preferred_language": "pt-BR"})
    assert re.search(
        r'data-field="preferred_language">\s*<details class="provenance">\s*<summary[^>]*>pt-BR</summary>',
        coordinator_client.get(url).content.decode(),
    )

    # A conflict opened (and then resolved) on a value: the flag comes and goes.
    conflict = PatientConflict.objects.create(
        patient=alma,
        field="birth_date",
        values=[{"value": "1961-04-21", "source": "crm", "recorded_at": "2026-01-02T00:00:00Z"}],
    )
    assert "1961-04-21 (crm, 2026-01-02)" in coordinator_client.get(url).content.decode()
    PatientConflict.objects.filter(pk=conflict.pk).update(status=PatientConflict.Status.RESOLVED)
    assert "1961-04-21 (crm, 2026-01-02)" not in coordinator_client.get(url).content.decode()

    # A source renamed: the badges say so.
    Source.objects.filter(pk=clinic.pk).update(name="Clinic EHR (Main Street)")
    assert 'title="Clinic EHR (Main Street) record c-1"' in coordinator_client.get(url).content.decode()

    # A record that leaves the patient takes its facts with it.
    other = Patient.objects.exclude(pk=alma.pk).get(is_active=True)
    PatientLink.objects.filter(source_patient__source_record_id="c-1").update(patient=other)
    assert "72.25 kg" not in _clinical_part(coordinator_client.get(url).content.decode())
    assert "72.25 kg" in _clinical_part(
        coordinator_client.get(f"/patients/{other.external_id}/").content.decode()
    )

    # A resource taken off its record by SQL no service wrote, moved to another record, then deleted.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE patients_sourceresource SET patient_id = NULL WHERE source_record_id = 'w-c'")
    assert "72.25 kg" not in _clinical_part(
        coordinator_client.get(f"/patients/{other.external_id}/").content.decode()
    )
    weight = SourceResource.objects.filter(source_record_id="w-c")
    weight.update(patient=SourcePatient.objects.get(source__slug="hospital-ehr", source_record_id="h-1"))
    assert "72.25 kg" in _clinical_part(coordinator_client.get(url).content.decode())
    ResourceCoding.objects.filter(resource__in=weight).delete()
    weight.delete()
    assert "72.25 kg" not in _clinical_part(coordinator_client.get(url).content.decode())


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the changes are written by PostgreSQL triggers"
)
def test_each_statement_adds_one_change_for_every_record_whose_resources_it_touched(alma: Patient) -> None:
    hospital = SourceResource.objects.select_related("patient").get(source_record_id="bp-h").patient
    clinic = SourceResource.objects.select_related("patient").get(source_record_id="w-c").patient
    assert hospital is not None
    assert clinic is not None

    def changes() -> tuple[int, int]:
        counted = SourceResourcesChange.objects.filter(source_patient__in=[hospital, clinic])
        return (
            counted.filter(source_patient=hospital).count(),
            counted.filter(source_patient=clinic).count(),
        )

    before = changes()
    assert before[0] >= 1  # the pipeline stored their resources
    assert before[1] >= 1
    SourceResource.objects.filter(patient__in=[hospital, clinic]).update(status="amended")
    assert changes() == (before[0] + 1, before[1] + 1)
    SourceResource.objects.filter(patient=hospital).update(patient=clinic)  # old and new owner
    assert changes() == (before[0] + 2, before[1] + 2)
    SourceResource.objects.filter(source_record_id="nothing-like-this").update(status="x")
    assert changes() == (before[0] + 2, before[1] + 2)


def test_medication_flags_a_start_in_hospital_and_a_stop_in_one_source_only(
    land: Land, coordinator_client: Client
) -> None:
    hospital, clinic, _ = _sources()
    metformin = {"text": "metformin 500 MG Oral Tablet"}
    started_inpatient = _medication("m-h", "urn:uuid:h-1", metformin)
    started_inpatient["encounter"] = {"reference": "urn:uuid:enc-ip"}
    land(
        hospital,
        as_bytes(
            transaction(
                patient("h-1"),
                _encounter("enc-ip", "IMP", "2024-03-01T08:00:00Z", "2024-03-04T12:00:00Z"),
                started_inpatient,
            )
        ),
    )
    land(
        clinic,
        as_bytes(
            transaction(
                patient("c-1", identifier=[{"system": "urn:oid:clinic", "value": "C-1"}]),
                _medication("m-c", "urn:uuid:c-1", metformin, status="stopped"),
            )
        ),
    )
    alma = Patient.objects.get(links__source_patient__source_record_id="h-1")
    assert alma.links.count() == 2

    (reconciled,) = patient_chart_get(alma).medications

    assert reconciled.flags == [
        "started during a hospital stay",
        "stopped in one source, still active in another",
    ]
    html = coordinator_client.get(f"/patients/{alma.external_id}/").content.decode()
    assert "started during a hospital stay" in html
    assert "stopped in one source, still active in another" in html


def test_deceased_status_is_shown_with_its_date(land: Land, coordinator_client: Client) -> None:
    hospital, _, _ = _sources()
    land(hospital, as_bytes(transaction(patient("h-1", deceasedDateTime="2025-02-03T04:05:00Z"))))
    alma = Patient.objects.get(links__source_patient__source_record_id="h-1")

    html = coordinator_client.get(f"/patients/{alma.external_id}/").content.decode()

    deceased = re.search(r'<dd data-field="deceased">(.*?)</dd>', html, re.S)
    assert deceased is not None
    assert ">yes, on 2025-02-03 04:05</summary>" in deceased[1]


def test_show_all_and_the_lab_picker_build_the_chart_once_per_version_of_the_record(
    alma: Patient, coordinator_client: Client, land: Land
) -> None:
    url = f"/patients/{alma.external_id}/sections/vitals/"
    caches[CACHE_ALIAS].clear()
    with CaptureQueriesContext(connection) as built:
        first = coordinator_client.get(url).content.decode()
    with CaptureQueriesContext(connection) as reused:
        again = coordinator_client.get(url).content.decode()
        coordinator_client.get(
            f"/patients/{alma.external_id}/lab-chart/", {"code": "2345-7"}, HTTP_HX_REQUEST="true"
        )

    assert again == first
    assert "71.5 kg" in first
    # The chart's statements ran for the first request only (the second and the lab chart read the version).
    chart_tables = ('"patients_sourceresource"',)  # the resources, not their change rows
    assert any(table in query["sql"] for query in built.captured_queries for table in chart_tables)
    assert not any(table in query["sql"] for query in reused.captured_queries for table in chart_tables)
    # Each request is audited all the same.
    assert AccessEvent.objects.filter(patient_ref=str(alma.external_id)).count() >= 3

    clinic = Source.objects.get(slug="clinic-ehr")
    land(
        clinic,
        as_bytes(
            transaction(
                _alma_at_the_clinic(),
                _weight("w-c", "urn:uuid:c-1", kilograms=72.25, when="2024-05-02T09:35:00-05:00"),
            )
        ),
    )
    changed = coordinator_client.get(url).content.decode()
    assert "72.25 kg" in changed
    assert "71.5 kg" not in changed
