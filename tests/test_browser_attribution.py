"""A marketing user in Chromium sees the attribution and cost panels load inside the cockpit, switches the
conversion without a reload, and finds the choice in the address bar (a reload shows the same)."""

import io
import re
from datetime import date

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from leadcockpit.insights import credits

from .test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server):
    call_command("seed_demo", leads=300, seed=9, today=date(2026, 11, 22), stdout=io.StringIO())
    credits.rebuild()
    return live_server


def test_the_attribution_panel_switches_conversion_in_place_and_keeps_it_in_the_url(page, demo):
    log_in(page, demo.url, "marketing")
    page.goto(f"{demo.url}/cockpit/?period=quarter")
    panel = page.locator("#attribution-panel")
    expect(panel.locator("caption")).to_have_text("MQLs credited per channel, by model")
    expect(panel.locator("svg[role=img]")).to_be_visible()
    expect(page.locator("#costs-panel .freshness")).to_contain_text("Data as of")
    expect(page.locator("#costs-panel #table-costs_value tbody tr")).to_have_count(5)
    page.locator("main").evaluate("el => el.dataset.marker = 'same-page'")

    page.locator("#id_attr-outcome").select_option("won")
    expect(panel.locator("caption")).to_have_text("Won deals credited per channel, by model")
    expect(page).to_have_url(re.compile(r"/cockpit/\?.*period=quarter.*attr-outcome=won"))
    assert page.locator("main").get_attribute("data-marker") == "same-page"

    page.goto(page.url)
    expect(page.locator("#attribution-panel caption")).to_have_text(
        "Won deals credited per channel, by model"
    )
    expect(page.locator("#id_attr-outcome")).to_have_value("won")
