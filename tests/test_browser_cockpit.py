"""A manager in Chromium opens the cockpit, changes the period and the channel, sees the panels change without a
reload, and downloads a panel's numbers as CSV."""

import csv
import io
import re
from datetime import date

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from leadcockpit.insights import credits, panels, rollups
from leadcockpit.insights.filters import CockpitFilter
from leadcockpit.leads.models import Lead

from .test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server):
    call_command("seed_demo", leads=400, seed=5, today=date(2026, 11, 22), stdout=io.StringIO())
    rollups.rebuild()
    # And the attribution credits: built here, not by the first panel request (on SQLite the live server's
    # threads share the test's one connection, and a rebuild inside a request beside the other panels' requests
    # can wait on it for good).
    credits.rebuild()
    return live_server


def funnel_total(query):
    """MGL over the range, as the funnel panel computes it for this query."""
    overview = panels.funnel(CockpitFilter(query).criteria).tables[0]
    return overview.rows[0][1]


def test_a_manager_changes_period_and_channel_and_downloads_a_csv(page, demo):
    log_in(page, demo.url, "manager")
    page.goto(f"{demo.url}/cockpit/")
    expect(page.get_by_role("heading", name="Cockpit", level=1)).to_be_visible()
    for name in panels.PANELS:
        expect(page.locator(f"#panel-{name}")).to_be_visible()
    expect(page.locator("#panel-funnel .freshness")).to_contain_text("Data as of")
    expect(page.locator("#panel-funnel svg[role=img]").first).to_be_visible()
    page.locator("main").evaluate("el => el.dataset.marker = 'same-page'")

    periods = page.locator("#table-funnel tbody tr")
    expect(periods).to_have_count(12)  # twelve months by default
    page.locator("#id_period").select_option("quarter")
    expect(page).to_have_url(re.compile(r"period=quarter"))
    expect(periods).to_have_count(8)  # eight quarters
    expect(page.locator("#table-funnel tbody tr").first.locator("th")).to_have_text(
        re.compile(r"^\d{4}-Q\d$")
    )

    channel = Lead.objects.exclude(first_channel=None).values_list("first_channel_id", flat=True).first()
    everyone = funnel_total({"period": "quarter"})
    only = funnel_total({"period": "quarter", "channel": channel})
    assert 0 < only < everyone
    mgl_cell = page.locator("#table-funnel_total tbody tr").first.locator("td").first
    expect(mgl_cell).to_have_text(f"{everyone:,}")
    page.locator("#id_channel").select_option(channel)
    expect(page).to_have_url(re.compile(rf"channel={channel}"))
    expect(mgl_cell).to_have_text(f"{only:,}")
    assert page.locator("main").get_attribute("data-marker") == "same-page"  # swapped by htmx, not reloaded
    page.screenshot(path="test-results/cockpit.png", full_page=True)

    with page.expect_download() as download_info:
        page.locator("#panel-funnel a.csv-link").first.click()
    download = download_info.value
    assert download.suggested_filename.startswith("cockpit-funnel_total-")
    with open(download.path(), encoding="utf-8") as downloaded:
        rows = list(csv.reader(downloaded))
    assert rows[0][:2] == ["Stage", "Leads"]
    assert rows[1][:2] == ["MGL", str(only)]  # the CSV carries the same filters

    # The URL is the view: opening it afresh shows the same numbers.
    page.goto(page.url)
    expect(page.locator("#table-funnel_total tbody tr").first.locator("td").first).to_have_text(f"{only:,}")
    expect(page.locator("#id_channel")).to_have_value(channel)


def test_the_cockpit_works_with_javascript_off(browser, demo):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, demo.url, "marketing")
    page.goto(f"{demo.url}/cockpit/")
    page.locator("#id_period").select_option("week")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"period=week"))
    expect(page.locator("#table-funnel tbody tr")).to_have_count(13)
    context.close()
