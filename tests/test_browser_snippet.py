"""The tracking snippet in Chromium: nothing before consent; then page view, download, link click, site
search and a form with an email that identifies the visitor and joins their anonymous history."""

import re

import pytest
from playwright.sync_api import expect

from leadcockpit.capture.models import ApiKey
from leadcockpit.leads.models import Lead, Touchpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, page, timeout_ms=5000):
    """Poll the database while the live server writes (SQLite's shared in-memory database may say 'locked')."""
    from django.db import OperationalError

    for _ in range(timeout_ms // 100):
        try:
            if predicate():
                return True
        except OperationalError:
            pass
        page.wait_for_timeout(100)
    return predicate()


def test_the_snippet_tracks_only_after_consent_and_identifies_on_signup(page, live_server):
    from leadcockpit.demo.seeding import ensure_reference_data

    ensure_reference_data()  # transactional tests start from a flushed database
    _key, secret = ApiKey.issue(name="Demo site", allowed_origins=[live_server.url])
    page.goto(f"{live_server.url}/capture/demo/?key={secret}&utm_campaign=launch")
    page.wait_for_timeout(500)
    # No tracking before consent.
    assert not wait_for(lambda: Touchpoint.objects.exists(), page, timeout_ms=300)

    page.get_by_role("button", name="Yes").click()
    assert wait_for(lambda: Touchpoint.objects.filter(kind="page_view").exists(), page)
    view = Touchpoint.objects.get(kind="page_view")
    assert (view.utm_campaign, view.lead) == ("launch", None)

    page.locator("#tracked").click()
    page.get_by_label("Search").fill("lead scoring")
    page.get_by_role("button", name="Search").click()
    page.locator("#download").click(modifiers=["Control"])  # a download link (opened aside)
    page.get_by_label("Email").fill("Visitor@Firma.example")
    page.get_by_role("button", name="Get the guide").click()
    assert wait_for(lambda: Touchpoint.objects.count() >= 5, page)

    lead = Lead.objects.get(email="visitor@firma.example")
    kinds = set(Touchpoint.objects.filter(lead=lead).values_list("kind", flat=True))
    assert kinds == {"page_view", "link_click", "site_search", "content_download", "form_submit"}
    assert Touchpoint.objects.get(kind="site_search").search_terms == "lead scoring"
    assert len(set(Touchpoint.objects.values_list("visitor_id", flat=True))) == 1
    expect(page.locator("#signup")).to_have_class(re.compile("sent"))


def test_a_key_bound_to_another_origin_records_nothing(page, live_server):
    _key, secret = ApiKey.issue(name="Other site", allowed_origins=["https://www.elsewhere.example"])
    page.context.add_cookies([{"name": "cockpit_consent", "value": "yes", "url": live_server.url}])
    page.goto(f"{live_server.url}/capture/demo/?key={secret}")
    page.wait_for_timeout(800)
    assert not Touchpoint.objects.exists()
