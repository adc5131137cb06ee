"""The ingest API: authenticated, idempotent by event id, field-level errors, anonymous visitors identified."""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from leadcockpit.capture.models import ApiKey
from leadcockpit.leads.models import Lead, Touchpoint
from leadcockpit.scoring.models import DirtyLead

from .factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def key():
    return ApiKey.issue(name="Website")[1]


def event(**overrides):
    data = {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "occurred_at": timezone.now().isoformat(),
        "url": "https://www.example.com/pricing",
        "email": "anna@firma.example",
    }
    return {**data, **overrides}


def post(client, path, body, key):
    return client.post(f"/api/v1/{path}", body, content_type="application/json", HTTP_X_API_KEY=key)


def test_an_event_for_a_new_address_makes_an_mgl_and_marks_it_for_rescoring(client, key):
    response = post(client, "events", event(), key)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    lead = Lead.objects.get(email="anna@firma.example")
    assert (lead.stage_id, lead.source) == ("mgl", "web_form")
    assert lead.stage_changes.get().system_actor == "capture"
    assert Touchpoint.objects.get().lead == lead
    assert DirtyLead.objects.filter(lead=lead).exists()


def test_a_replay_changes_nothing(client, key):
    body = event()
    assert post(client, "events", body, key).json() == {"accepted": 1, "duplicates": 0}
    assert post(client, "events", body, key).json() == {"accepted": 0, "duplicates": 1}
    assert Touchpoint.objects.count() == 1


def test_without_a_valid_key_nothing_is_stored(client, key):
    assert post(client, "events", event(), "").status_code == 401
    assert post(client, "events", event(), "lc_nope_secret").status_code == 401
    assert post(client, "events", event(), key + "x").status_code == 401
    ApiKey.objects.get().revoke()
    assert post(client, "events", event(), key).status_code == 401
    assert not Touchpoint.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"type": "telepathy"}, "type"),
        ({"occurred_at": (timezone.now() - timedelta(days=2)).isoformat()}, "occurred_at"),
        ({"occurred_at": (timezone.now() + timedelta(hours=1)).isoformat()}, "occurred_at"),
        ({"occurred_at": "2026-11-23T10:00:00"}, "occurred_at"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"email": "not an address"}, "email"),
        ({"title": "x" * 301}, "title"),
        ({"title": "a\x00b"}, "event"),
        ({"properties": {"blob": "x" * 5000}}, "properties"),
        ({"properties": {"k": "a\x00b"}}, "properties"),
        ({"email": "", "visitor_id": ""}, "event"),
    ],
)
def test_bad_events_get_field_level_errors_and_store_nothing(client, key, overrides, field):
    response = post(client, "events", event(**overrides), key)
    assert response.status_code == 422
    assert field in str(response.json())
    assert not Touchpoint.objects.exists()


def test_a_bad_event_in_a_batch_does_not_sink_the_good_ones(client, key):
    good = [event(email=f"lead{i}@firma.example") for i in range(3)]
    bad = event(type="telepathy")
    response = post(client, "events/batch", {"events": [good[0], bad, good[1], good[2], good[0]]}, key)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    assert [r["index"] for r in body["rejected"]] == [1]
    assert body["rejected"][0]["errors"][0]["field"] == "type"
    assert Touchpoint.objects.count() == 3


def test_a_batch_has_at_most_500_events_and_must_be_json(client, key):
    assert post(client, "events/batch", {"events": [event() for _ in range(501)]}, key).status_code == 422
    response = client.post(
        "/api/v1/events/batch", "{nope", content_type="application/json", HTTP_X_API_KEY=key
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Cannot parse request body"}
    assert not Touchpoint.objects.exists()


def test_a_body_beyond_the_upload_limit_gets_a_json_413_and_stores_nothing(client, key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 5_000
    response = post(client, "events/batch", {"events": [event() for _ in range(50)]}, key)
    assert response.status_code == 413
    assert "5000 bytes" in response.json()["detail"]
    assert not Touchpoint.objects.exists()


def test_an_anonymous_visitors_history_joins_the_lead_once_they_identify(client, key):
    for path in ("/", "/pricing"):
        post(client, "events", event(email="", visitor_id="v-123", url=f"https://www.example.com{path}"), key)
    assert Touchpoint.objects.filter(lead__isnull=True).count() == 2
    existing = LeadFactory(email="known@firma.example")
    post(client, "events", event(type="form_submit", email="Known@Firma.example", visitor_id="v-123"), key)
    assert Touchpoint.objects.filter(lead=existing).count() == 3
    assert not Touchpoint.objects.filter(lead__isnull=True).exists()


def test_visitors_identified_in_one_batch_each_bring_their_own_history_to_their_own_lead(client, key):
    for visitor in ("v-a", "v-a", "v-b", "v-stranger"):
        post(client, "events", event(email="", visitor_id=visitor), key)
    anna, ben = LeadFactory(email="anna@firma.example"), LeadFactory(email="ben@firma.example")
    batch = [
        event(email="anna@firma.example", visitor_id="v-a"),
        event(email="ben@firma.example", visitor_id="v-b"),
    ]

    assert post(client, "events/batch", {"events": batch}, key).status_code == 202

    assert Touchpoint.objects.filter(lead=anna).count() == 3
    assert Touchpoint.objects.filter(lead=ben).count() == 2
    assert list(Touchpoint.objects.filter(lead__isnull=True).values_list("visitor_id", flat=True)) == [
        "v-stranger"
    ]


def test_tracked_xss_is_stored_as_sent_and_rendered_inert(client, key, client_for, marketer):
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    post(
        client,
        "events",
        event(title=payload, utm_campaign=payload, url="https://x.example/?q=" + payload),
        key,
    )
    lead = Lead.objects.get()
    page = client_for(marketer).get(f"/leads/{lead.pk}/").text
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_openapi_schema_is_served(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/events" in schema["paths"]
    assert "/api/v1/events/batch" in schema["paths"]


def test_the_api_reference_page_works_under_our_csp_and_documents_both_endpoints(client, settings):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in response["Content-Security-Policy"]
    page = response.text
    # No inline script and nothing from elsewhere: every script is one of our static files.
    assert re.findall(r"<script(?![^>]*\bsrc=\"/static/)", page) == []
    assert " style=" not in page
    assert "POST /api/v1/events</code>" in page
    assert "POST /api/v1/events/batch</code>" in page
    for field in ("event_id", "occurred_at", "visitor_id", "external_id", "properties", "events"):
        assert f"<code>{field}</code>" in page
    assert "at most 2048 characters" in page  # url's limit, from the schema
    assert "at most 500 items" in page
    assert "<code>page_view</code>" in page  # the event types
    assert "With a time zone; at most 24 h old and 5 min ahead." in page
    for status in ("202", "400", "401", "413", "422", "429"):
        assert f'<td class="num">{status}</td>' in page
    assert "X-Api-Key: lc_" in page  # the example curl
    assert 'href="/api/v1/openapi.json"' in page


def test_beyond_the_rate_limit_a_source_gets_429_with_retry_after(client, key, settings, monkeypatch):
    import leadcockpit.capture.api as ingest_api

    settings.INGEST_EVENTS_PER_SECOND = 3
    monkeypatch.setattr(ingest_api.time, "time", lambda: 1_800_000_000.5)  # a controlled clock: one window
    answers = [post(client, "events", event(), key).status_code for _ in range(5)]
    assert answers == [202, 202, 202, 429, 429]
    throttled = post(client, "events/batch", {"events": [event() for _ in range(2)]}, key)
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "1"
    assert throttled.json()["retry_after"] == 1
    monkeypatch.setattr(ingest_api.time, "time", lambda: 1_800_000_001.5)  # the next second
    assert post(client, "events/batch", {"events": [event() for _ in range(3)]}, key).status_code == 202
    assert Touchpoint.objects.count() == 6


def test_browsers_may_send_only_from_the_origins_their_key_allows(client):
    _key, secret = ApiKey.issue(name="Website", allowed_origins=["https://www.example.com"])
    _other, server_only = ApiKey.issue(name="Newsletter tool")

    def from_browser(key, origin):
        return client.post(
            "/api/v1/events", event(), content_type="application/json", HTTP_X_API_KEY=key, HTTP_ORIGIN=origin
        )

    ok = from_browser(secret, "https://www.example.com")
    assert ok.status_code == 202
    assert ok["Access-Control-Allow-Origin"] == "https://www.example.com"
    elsewhere = from_browser(secret, "https://evil.example")
    assert elsewhere.status_code == 401
    assert "Access-Control-Allow-Origin" not in elsewhere
    # A server-to-server key is refused from any browser.
    assert from_browser(server_only, "https://www.example.com").status_code == 401
    preflight = client.options("/api/v1/events", HTTP_ORIGIN="https://www.example.com")
    assert preflight.status_code == 204
    assert "X-Api-Key" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in client.options(
        "/api/v1/events", HTTP_ORIGIN="https://evil.example"
    )
    assert Touchpoint.objects.count() == 1


def test_a_conflict_with_concurrent_work_answers_503_with_retry_after_and_stores_nothing(
    client, key, monkeypatch
):
    """Fault injection: the database refuses the write as it would when a merge deletes the lead meanwhile."""
    from django.db import IntegrityError

    from leadcockpit.capture import actions

    def conflict(**kwargs):
        raise IntegrityError('insert or update on table "leads_touchpoint" violates foreign key constraint')

    monkeypatch.setattr(actions, "ingest", conflict)
    response = post(client, "events", event(), key)

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["retry_after"] == 1
    assert not Touchpoint.objects.exists()
