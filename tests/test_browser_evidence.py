"""Issue 8 end to end in Chromium: a marketer learns from the known outcomes, reads the explanation and the
exclusions, turns the suggestion into a draft, and sees in the workbench its backtest beside the active model's;
then computes the draft's validity report. Screenshots go to /tmp/evidence.png and /tmp/validity.png."""

import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from leadcockpit.scoring.models import LearningRun, ScoringVersion, ValidityReport

from .test_browser import log_in
from .test_evidence_views import plant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(tempfile.gettempdir())


def number(text):
    return float(text.strip().replace(",", "."))


def test_a_marketer_runs_a_suggestion_opens_the_draft_and_sees_its_backtest_beside_the_active_model(
    page, live_server, tasks_in_process
):
    from leadcockpit.demo.seeding import DEMO_PASSWORD, ensure_reference_data
    from leadcockpit.scoring.defaults import create_default_model

    from .factories import UserFactory

    ensure_reference_data()  # the role groups, which an earlier test's flush took away
    marketer = UserFactory(role="marketing", username="marketing", password=DEMO_PASSWORD)
    active = create_default_model(marketing_user=marketer, sales_user=UserFactory(role="sales manager"))
    plant(n=900)
    page.set_viewport_size({"width": 1440, "height": 900})

    # --- from the overview to the model's evidence; learn with the default options
    log_in(page, live_server.url, "marketing")
    page.goto(f"{live_server.url}/scoring/")
    page.locator(".model-card", has_text=active.model.name).get_by_role("link", name="Evidence").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Evidence: {active.model.name}")
    options = page.locator("#learn-options")
    expect(options).to_contain_text("Entered by sales after contact")  # BANT and the sales attribute, locked
    expect(options.get_by_label("Held out for judging (%)")).to_have_value("30")
    options.get_by_role("button", name="Learn").click()

    # --- the run's findings: effects in words, exclusions with reasons, held-out figures, the suggestion
    run = page.locator("#learning-run")
    expect(run.get_by_role("heading", name="What predicts a deal")).to_be_visible(timeout=60_000)
    learning_run = LearningRun.objects.get()
    assert learning_run.status == "done"
    expect(run.locator("table.explanation")).to_contain_text("Segment is B")
    expect(run.locator("table.explanation")).to_contain_text("multiplies the odds of converting")
    expect(run.locator("table.exclusions")).to_contain_text("Rep rating")
    expect(run.locator("table.exclusions")).to_contain_text("Status note")
    expect(run.locator("svg.chart")).to_have_count(1)
    expect(run.locator("table.suggestion")).to_contain_text("Segment is B")
    # The leak the guard found can be used anyway in the next run; the sales field cannot.
    expect(page.get_by_label(re.compile("Use Status note anyway"))).to_be_visible()
    expect(page.get_by_label(re.compile("Use Rep rating anyway"))).to_have_count(0)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / "evidence.png", full_page=True)

    # --- the suggestion becomes a draft, opened in the workbench
    run.get_by_role("button", name="Create draft from this suggestion").click()
    expect(page.locator(".page-head .badge")).to_have_text("Draft")
    draft = ScoringVersion.objects.get(status="draft")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{active.model.name} v{draft.number}")
    expect(page.locator(".messages")).to_contain_text(f"learning run #{learning_run.pk}")
    segment = draft.criteria.filter(field="attribute:segment").first()
    expect(page.locator(f"#id_c{segment.pk}-field")).to_have_value("attribute:segment")
    expect(page.locator(f"#id_c{segment.pk}-field option:checked")).to_have_text("Segment")

    # --- its backtest beside the active model's: learned from the outcomes, it ranks them better
    panel = page.locator("#preview-panel")
    expect(panel.get_by_role("heading", name="Backtest")).to_be_visible(timeout=60_000)
    auc = panel.locator("table.backtest tr", has_text="ROC AUC").locator("td")
    this, other = number(auc.nth(0).inner_text()), number(auc.nth(1).inner_text())
    assert this > other + 0.1, (this, other)

    # --- the draft's validity report, computed on demand
    page.get_by_role("link", name="Validity report").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Validity: {active.model.name} v{draft.number}"
    )
    page.get_by_role("button", name="Compute now").click()
    expect(page.locator("#validity-auc")).not_to_have_text("—")
    report = ValidityReport.objects.get(version=draft)
    assert number(page.locator("#validity-auc").inner_text()) == pytest.approx(report.auc, abs=0.005)
    assert report.result["calibration_source"] == "learned"  # the run's scale predicts the chances
    expect(page.locator("#validity-lift svg.chart")).to_be_visible()
    expect(page.locator("#validity-calibration")).to_contain_text(
        "Predicted with the scale of the learning run"
    )
    # The active version's report was computed with it, to compare with; a second report starts the history line.
    expect(page.locator("#validity-summary")).to_contain_text(f"Active version v{active.number}")
    page.get_by_role("button", name="Compute now").click()
    expect(page.locator("#validity-history svg.chart")).to_be_visible()
    expect(page.locator("#validity-history tbody tr")).to_have_count(2)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / "validity.png", full_page=True)
