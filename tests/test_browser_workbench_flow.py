"""Issue 6 end to end in Chromium: a marketer drafts, edits and sees the figures follow; both sides approve below the
what-if and backtest; activation rescores every lead, and the lead list shows the bands the preview foretold."""

import io
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from leadcockpit.leads.models import Lead
from leadcockpit.scoring import whatif
from leadcockpit.scoring.models import Approval, Preview, RescoreJob, ScoringVersion

from .test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BAND_NAMES = {"red": "Red", "yellow": "Yellow", "green": "Green"}
SHOTS = Path(tempfile.gettempdir())  # /tmp/workbench.png and /tmp/leadlist.png, to look at after a run


@pytest.fixture
def demo(live_server):
    """A few hundred demo leads, scored as of now by the default model (v1, active)."""
    call_command("seed_demo", leads=300, seed=3, today=timezone.now().date(), stdout=io.StringIO())
    assert not Lead.objects.filter(scored_at__isnull=True).exists()
    return live_server


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def figures_shown(panel):
    """Wait for the figures (not 'Computing…'), then read the MQL count and the traffic-light rows off the panel."""
    expect(panel.get_by_role("heading", name="Backtest")).to_be_visible()
    mql = panel.locator("#mql-figures > div").first.locator("strong").inner_text()
    bands = {}
    for key, name in BAND_NAMES.items():
        cells = panel.locator("table.figures").first.locator("tr", has_text=name).locator("td")
        bands[key] = (cells.nth(0).inner_text(), cells.nth(1).inner_text())
    return mql, bands


def changed_sample(panel):
    """The leads the panel says change their traffic light: (name, from band, to band), in its order."""
    rows = []
    for row in panel.locator("table.changed-leads tbody tr").all():
        lights = row.locator("td").nth(1).locator(".light")
        old, new = (re.search(r"light--(\w+)", lights.nth(i).get_attribute("class"))[1] for i in (0, 1))
        rows.append((row.locator("a").inner_text(), old, new))
    return rows


def test_a_draft_is_edited_previewed_approved_by_both_sides_and_the_leads_carry_its_bands(
    page, demo, tasks_in_process
):
    v1 = ScoringVersion.objects.get(status="active")
    # --- a marketer starts a draft from the active version and opens its workbench
    log_in(page, demo.url, "marketing")
    page.goto(f"{demo.url}/scoring/")
    page.get_by_role("link", name=f"v{v1.number}", exact=True).click()
    page.get_by_role("button", name="New draft from this version").click()
    expect(page.locator(".page-head .badge")).to_have_text("Draft")
    draft = ScoringVersion.objects.get(status="draft")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{draft.model.name} v{draft.number}")
    panel = page.locator("#preview-panel")
    mql_before, bands_before = figures_shown(panel)
    # An unchanged copy changes nothing: this side and the active side agree.
    assert all(this == active for this, active in bands_before.values()), bands_before
    assert panel.locator("table.changed-leads").count() == 0

    # --- edits a fit criterion; the row saves itself and the figures follow
    target = draft.criteria.get(label="Target industry")
    points = page.locator(f"#id_c{target.pk}-points")
    points.fill("60")
    points.press("Tab")
    expect(points).to_have_value("60.0")  # the row came back from the server
    expect(panel.locator("#mql-figures strong").first).not_to_have_text(mql_before)
    mql_after, bands_after = figures_shown(panel)
    target.refresh_from_db()
    assert target.points == 60

    expected = whatif.compute(draft)["sides"]["draft"]
    assert mql_after == str(expected["mql"])
    assert int(mql_after) > int(mql_before)  # more target-industry points, more MQLs
    for key in BAND_NAMES:
        assert bands_after[key][0] == str(expected["bands"][key]), key
    assert bands_after["green"][0] != bands_before["green"][0]
    assert changed_sample(panel), "the panel lists the leads that change their traffic light"
    # Wide enough for the figures to stand beside the criteria, as a marketer at a desk sees them.
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / "workbench.png")
    page.set_viewport_size({"width": 1280, "height": 720})

    # --- proposes it, and approves for marketing below the figures
    page.locator("#sign-off").get_by_role("button", name="Propose").click()
    expect(page.locator(".page-head .badge")).to_have_text("Proposed")
    expect(points).to_be_disabled()
    assert figures_shown(panel)[0] == mql_after
    panel.get_by_role("button", name="Approve with these figures").click()
    expect(page.locator(".messages")).to_contain_text("Your approval of")
    expect(page.locator("#sign-off")).to_contain_text("You approved on")
    log_out(page)

    # --- a sales manager goes from the overview to the figures, reads the what-if and the backtest, approves
    log_in(page, demo.url, "manager")
    page.goto(f"{demo.url}/scoring/")
    page.locator("tr", has_text=f"v{draft.number}").get_by_role("link", name="Review and approve").click()
    panel = page.locator("#preview-panel")
    assert figures_shown(panel) == (mql_after, bands_after)
    expect(panel.locator("table.backtest")).to_contain_text("ROC AUC")
    expect(panel.locator("table.backtest-rates tbody tr")).to_have_count(3)
    sample = changed_sample(panel)  # the manager's sample: only the leads they may open
    assert sample, "the sample holds leads of the manager's team"
    name, old_band, new_band = sample[0]
    assert old_band != new_band
    panel.get_by_role("button", name="Approve with these figures").click()

    # --- activation starts the full rescore; its progress bar reaches 100 %
    expect(page.locator(".page-head .badge")).to_have_text("Active")
    progress = page.locator("#rescore-progress")
    expect(progress.locator("progress")).to_have_attribute("value", "100", timeout=30_000)
    expect(progress).to_contain_text("Done")
    expect(progress).to_contain_text(f"{Lead.objects.count()} leads scored")
    job = RescoreJob.objects.get()
    assert (job.status, job.percent) == ("done", 100)
    previews = set(Approval.objects.filter(version=draft).values_list("preview_id", flat=True))
    assert len(previews) == 1  # both sides approved the same figures
    assert None not in previews
    assert Preview.objects.get(pk=previews.pop()).fingerprint == whatif.fingerprint(draft)

    # --- the lead list shows the new band of a lead the preview said would change
    page.goto(f"{demo.url}/leads/")
    page.get_by_role("searchbox", name="Search").fill(name.split()[-1])
    row = page.locator("#lead-results tbody tr", has=page.get_by_role("link", name=name, exact=True))
    expect(row).to_have_count(1)
    expect(row.locator(".light")).to_have_class(re.compile(rf"\blight--{new_band}\b"))
    expect(row.locator(".light")).to_have_attribute("title", f"Traffic light: {BAND_NAMES[new_band]}")
    assert Lead.objects.get(pk=_lead_id(row)).band == new_band
    page.get_by_role("link", name="Reset").click()
    expect(page.locator("#lead-results tbody tr").first).to_be_visible()
    page.screenshot(path=SHOTS / "leadlist.png", full_page=True)


def _lead_id(row):
    return int(re.search(r"/leads/(\d+)/", row.locator("a.lead-link").get_attribute("href"))[1])


def test_figures_no_worker_takes_up_say_so_after_ten_seconds_and_appear_once_one_does(page, live_server):
    from leadcockpit.demo.seeding import DEMO_PASSWORD, ensure_reference_data
    from leadcockpit.scoring import actions
    from leadcockpit.scoring.defaults import create_default_model

    from .factories import LeadFactory, UserFactory

    ensure_reference_data()  # the role groups, which an earlier test's flush took away
    marketer = UserFactory(role="marketing", username="marketing", password=DEMO_PASSWORD)
    active = create_default_model(marketing_user=marketer, sales_user=UserFactory(role="sales manager"))
    draft = actions.new_draft(model=active.model, by=marketer)
    # Live since an hour ago: a preview asked for before an activation would not be reused (the leads changed).
    ScoringVersion.objects.filter(pk=active.pk).update(activated_at=timezone.now() - timedelta(hours=1))
    LeadFactory.create_batch(3)
    log_in(page, live_server.url, "marketing")
    # Asked for 7 s ago, and no worker has taken it (the page reuses it: the same state, and not stale yet).
    preview = Preview.objects.create(
        version=draft, fingerprint=whatif.fingerprint(draft), as_of=timezone.now()
    )
    Preview.objects.filter(pk=preview.pk).update(created_at=timezone.now() - timedelta(seconds=7))
    page.goto(f"{live_server.url}/scoring/versions/{draft.pk}/")
    panel = page.locator("#preview-panel")
    expect(panel).to_contain_text("Computing…")
    expect(panel).not_to_contain_text("Waiting for a worker")
    # The panel polls; past ten seconds in the queue the server says what is going on.
    expect(panel.locator(".waiting-for-worker")).to_contain_text(
        "Waiting for a worker: no background worker has taken up these figures yet.", timeout=10_000
    )
    expect(panel).not_to_contain_text("Computing…")
    assert Preview.objects.filter(version=draft).count() == 1  # the same request, not a new one per poll

    page.goto("about:blank")  # nothing polls while this test is the worker (SQLite shares one connection)
    whatif.run_preview(preview.pk)
    page.goto(f"{live_server.url}/scoring/versions/{draft.pk}/")
    expect(panel.get_by_role("heading", name="Backtest")).to_be_visible()
    expect(panel.locator(".waiting-for-worker")).to_have_count(0)
