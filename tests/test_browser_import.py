"""A marketer in Chromium imports X Education's Leads.csv with the shipped preset: upload, the mapping and its
live preview, the start, the progress bar to 100 %, the results; and a workbook named .csv is refused."""

import re

import pytest
from playwright.sync_api import expect

from leadcockpit.capture.models import ImportJob
from leadcockpit.leads.models import Lead

from .conftest import SHARED_DATA
from .factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.django_db(transaction=True)]
X_EDUCATION = SHARED_DATA / "x-education"


@pytest.fixture
def marketer_page(page, live_server):
    from leadcockpit.demo.seeding import ensure_reference_data

    ensure_reference_data()  # transactional tests start from a flushed database
    user = UserFactory(role="marketing", username="marketing")
    user.set_password("pw-for-tests-1")
    user.save()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("marketing")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import from CSV")).to_be_visible()
    return page


def test_a_marketer_imports_the_x_education_file_through_the_browser(marketer_page, tasks_in_process):
    page = marketer_page
    page.get_by_label("What the file holds").select_option("leads")
    page.get_by_label("CSV file").set_input_files(str(X_EDUCATION / "Leads.csv"))
    page.get_by_label("Mapping preset").select_option(label="X Education (Leads.csv)")
    page.get_by_role("button", name="Upload and map columns").click()

    expect(page.get_by_role("heading", name="Leads.csv")).to_be_visible()
    expect(page.get_by_role("button", name="Import 9,240 rows")).to_be_visible()
    preview = page.locator("#import-preview")
    expect(preview.locator("tbody tr")).to_have_count(20)
    expect(preview.get_by_text("will be rejected")).to_have_count(0)

    # Leaving out the key column: the preview (htmx, on change) says every row would be rejected.
    key = page.get_by_label("Prospect ID: Goes to")
    expect(key).to_have_value("external_id")
    key.select_option("")
    expect(preview.get_by_text("will be rejected")).to_have_count(20)
    expect(preview.get_by_text("Choose a column for Email or External id")).to_be_visible()
    key.select_option("external_id")
    expect(preview.get_by_text("will be rejected")).to_have_count(0)

    page.get_by_role("button", name="Import 9,240 rows").click()
    progress = page.locator("#import-progress")
    expect(progress.locator("progress")).to_have_attribute("value", "100", timeout=60_000)
    expect(page.locator("#count-created")).to_have_text("9,240")
    expect(page.locator("#count-rejected")).to_have_text("0")
    assert Lead.objects.count() == 9240
    assert ImportJob.objects.get().status == "done"

    page.get_by_role("link", name="Leads", exact=True).click()
    page.get_by_role("searchbox", name="Search").fill("7927b2df-8bba-4d29-b9a2-b6e0beafe620")
    page.get_by_role("searchbox", name="Search").press("Enter")
    page.get_by_role("link", name="7927b2df-8bba-4d29-b9a2-b6e0beafe620").click()
    attributes = page.locator("#lead-attributes")
    expect(attributes).to_contain_text("Interested in other courses")
    expect(attributes).to_contain_text("lead_source")


def test_a_workbook_named_csv_is_refused_with_advice_in_the_browser(marketer_page):
    page = marketer_page
    page.get_by_label("CSV file").set_input_files(
        str(X_EDUCATION / "variants" / "Leads__khajanawaz__actually-xlsx.csv")
    )
    page.get_by_role("button", name="Upload and map columns").click()

    expect(page.get_by_role("alert")).to_contain_text("This is an Excel workbook")
    expect(page).to_have_url(re.compile(r"/imports/$"))
    assert not ImportJob.objects.exists()
