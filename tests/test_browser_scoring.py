"""A person in Chromium on the scoring pages: joint sign-off below the figures, the rescore progress bar, the ledger
and 'score as of'."""

import io
import re
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from leadcockpit.accounts.models import User
from leadcockpit.leads.models import Lead
from leadcockpit.scoring import actions
from leadcockpit.scoring.models import RescoreJob, ScoringVersion

from .test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server):
    call_command("seed_demo", leads=200, seed=5, today=date(2026, 11, 22), stdout=io.StringIO())
    return live_server


def log_out(page):
    page.get_by_role("button", name="Log out").click()


def test_marketing_proposes_both_sides_approve_and_every_lead_is_rescored(page, demo, tasks_in_process):
    active = ScoringVersion.objects.get(status="active")
    draft = actions.new_draft(model=active.model, by=User.objects.get(username="marketing"))
    draft.criteria.filter(label="Demo request").update(points=60)

    log_in(page, demo.url, "marketing")
    page.goto(f"{demo.url}/scoring/")
    row = page.locator("tr", has_text=f"v{draft.number}")
    expect(row.locator(".badge")).to_have_text("Draft")
    row.get_by_role("button", name="Propose").click()
    expect(page.get_by_text("is proposed; marketing and sales can now approve it")).to_be_visible()
    # Approving starts on the version's page, below its what-if and backtest.
    approve_with_the_figures(page, row)
    expect(page.locator(".messages")).to_contain_text("Your approval of")
    expect(page.locator("#sign-off")).to_contain_text("Marketing: ")
    expect(page.locator("#sign-off")).to_contain_text("with the figures in front of them")
    # The same person cannot approve for the other side too: the page offers no second approval.
    expect(page.locator("#sign-off")).to_contain_text("You approved on")
    expect(page.get_by_role("button", name="Approve with these figures")).to_have_count(0)
    log_out(page)

    log_in(page, demo.url, "manager")
    page.goto(f"{demo.url}/scoring/")
    approve_with_the_figures(page, page.locator("tr", has_text=f"v{draft.number}"))
    expect(page.locator(".page-head .badge")).to_have_text("Active")
    progress = page.locator("#rescore-progress")
    expect(progress).to_contain_text("Done")
    expect(progress).to_contain_text(f"{Lead.objects.count()} leads scored")
    assert RescoreJob.objects.get().status == "done"
    assert set(draft.approvals.exclude(preview=None).values_list("user__username", flat=True)) == {
        "marketing",
        "manager",
    }
    page.goto(f"{demo.url}/scoring/")
    expect(page.locator("tr", has_text=f"v{draft.number}").locator(".badge")).to_have_text("Active")
    expect(page.locator("tr", has_text=f"v{active.number}").locator(".badge")).to_have_text("Retired")


def approve_with_the_figures(page, row):
    """From the overview's row to the version's page; approve once its figures are on screen."""
    row.get_by_role("link", name="Review and approve").click()
    expect(page).to_have_url(re.compile(r"/scoring/versions/\d+/#preview-panel$"))
    panel = page.locator("#preview-panel")
    expect(panel.get_by_role("heading", name="Backtest")).to_be_visible()
    expect(panel.locator("#mql-figures")).to_be_visible()
    panel.get_by_role("button", name="Approve with these figures").click()


def test_the_progress_bar_follows_a_running_job_by_polling(page, demo):
    low, high = Lead.objects.order_by("pk").first().pk, Lead.objects.order_by("pk").last().pk
    # The job row as a worker finds it; this test is the worker.
    job = RescoreJob.objects.create(
        reason="Rescore for the test",
        as_of=ScoringVersion.objects.get().activated_at,
        first_id=low,
        next_id=low,
        last_id=high,
    )
    log_in(page, demo.url, "marketing")
    page.goto(f"{demo.url}/scoring/")
    progress = page.locator("#rescore-progress")
    expect(progress).to_contain_text("Queued")
    actions.run_rescore_job(job_id=job.pk, chunk_size=100, max_chunks=1)
    expect(progress).to_contain_text("Running")
    expect(progress.locator("progress")).not_to_have_attribute("value", "0")
    actions.run_rescore_job(job_id=job.pk, chunk_size=100)
    expect(progress).to_contain_text("Done")
    expect(progress.locator("progress")).to_have_attribute("value", "100")
    expect(progress).not_to_have_attribute("hx-trigger", re.compile("every"))  # polling stops


def test_a_rep_reads_the_ledger_and_the_score_as_of_a_past_moment(page, demo):
    rep = User.objects.get(username="rep")
    lead = Lead.objects.visible_to(rep).filter(scored_at__isnull=False).order_by("-score").first()
    log_in(page, demo.url, "rep")
    page.goto(f"{demo.url}/leads/{lead.pk}/")
    ledger = page.locator("#score-ledger")
    expect(ledger.get_by_role("heading", name="Why this score")).to_be_visible()
    expect(ledger.locator("table.ledger tbody tr").first).to_be_visible()
    expect(ledger.locator(".ledger-missing")).to_be_visible()

    first = lead.score_changes.order_by("at").first()
    # The form speaks the cockpit's time zone, like every date on the page; a minute after the first change.
    moment = timezone.localtime(first.at) + timedelta(minutes=1)
    ledger.get_by_label("Score at").fill(moment.strftime("%Y-%m-%dT%H:%M"))
    ledger.get_by_role("button", name="Show").click()
    expect(page.locator("#score-at")).to_contain_text(f"{first.score:.0f} · {first.grade}")
    expect(page).to_have_url(re.compile(rf"/leads/{lead.pk}/$"))  # swapped in place, the lead page stays
    page.locator("#score-ledger").screenshot(path="test-results/ledger.png")
