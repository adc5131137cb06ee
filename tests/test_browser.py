"""A person in Chromium: log in as each role, open the lead list, filter it, open a lead."""

import io
import re
from datetime import date

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from leadcockpit.accounts.models import User
from leadcockpit.demo.seeding import DEMO_PASSWORD
from leadcockpit.leads.models import Lead

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server):
    call_command("seed_demo", leads=300, seed=3, today=date(2026, 11, 22), stdout=io.StringIO())
    return live_server


def log_in(page, base, username):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/inbox/$" if username.startswith("rep") else r"/leads/$"))


@pytest.mark.parametrize("username", ["admin", "marketing", "manager", "rep"])
def test_each_role_logs_in_filters_the_list_and_opens_a_lead(page, demo, username):
    user = User.objects.get(username=username)
    visible = Lead.objects.visible_to(user)
    assert visible.exists()
    log_in(page, demo.url, username)
    page.goto(f"{demo.url}/leads/")
    rows = page.locator("#lead-results tbody tr")
    expect(rows.first).to_be_visible()

    # Filtering by stage swaps only the results (htmx) and keeps the filter in the URL.
    stage = visible.order_by("stage__position").values_list("stage_id", flat=True).first()
    expected = visible.filter(stage_id=stage).count()
    page.locator("#lead-filters").evaluate("form => form.dataset.marker = 'same-form'")
    page.get_by_label("Stage").select_option(stage)
    expect(page).to_have_url(re.compile(rf"stage={stage}"))
    expect(page.locator("#lead-results .results-count")).to_contain_text(f"{expected} lead")
    assert page.locator("#lead-filters").get_attribute("data-marker") == "same-form"  # no full reload

    first = rows.first.locator("a.lead-link")
    name = first.inner_text()
    first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    expect(page.locator(".timeline li").first).to_be_visible()


def test_rep_sees_not_found_for_another_reps_lead(page, demo):
    foreign = Lead.objects.exclude(owner__username="rep").filter(owner__isnull=False).first()
    log_in(page, demo.url, "rep")
    response = page.goto(f"{demo.url}/leads/{foreign.pk}/")
    assert response.status == 404


def test_list_works_with_javascript_off(browser, demo):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, demo.url, "marketing")
    page.get_by_label("Traffic light").select_option("red")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"band=red"))
    expect(page.locator("#lead-results tbody tr").first).to_be_visible()
    page.get_by_role("link", name=re.compile("Next")).click()
    expect(page).to_have_url(re.compile(r"after="))
    context.close()
