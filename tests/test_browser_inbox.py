"""A rep in Chromium works the inbox: sees the new leads, accepts one, rejects another with a reason."""

import io
import re
from datetime import date

import pytest
from django.core.management import call_command
from django.db.models import Count, Q
from playwright.sync_api import expect

from leadcockpit.accounts.models import User
from leadcockpit.handover.models import Handover
from leadcockpit.leads.models import Lead

from .test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server):
    call_command("seed_demo", leads=1000, seed=8, today=date(2026, 11, 22), stdout=io.StringIO())
    return live_server


def test_a_rep_accepts_one_lead_and_rejects_another_with_a_reason(page, demo):
    rep = (
        User.objects.annotate(waiting=Count("handovers", filter=Q(handovers__status="open")))
        .order_by("-waiting", "username")
        .first()
    )
    mine = list(Handover.objects.filter(rep=rep, status="open").order_by("due_at", "pk"))
    assert len(mine) >= 2, "the demo seed routes fresh MQLs to the reps"
    log_in(page, demo.url, rep.username)
    expect(page).to_have_url(re.compile(r"/inbox/$"))
    rows = page.locator("#inbox-list tbody tr")
    expect(rows).to_have_count(len(mine))
    counters = page.locator("#inbox-counters")
    expect(counters).to_contain_text(f"{len(mine)} to accept or reject")
    page.locator("#inbox-list").evaluate("el => el.closest('main').dataset.marker = 'same-page'")
    page.screenshot(path="test-results/inbox.png", full_page=True)

    first, second = mine[0], mine[1]
    page.locator(f"#handover-{first.pk}").get_by_role("button", name="Accept").click()
    expect(page.locator("#inbox-list .message")).to_contain_text("accepted")
    expect(rows).to_have_count(len(mine) - 1)
    expect(counters).to_contain_text(f"{len(mine) - 1} to accept or reject")  # out of band

    row = page.locator(f"#handover-{second.pk}")
    row.get_by_label("Reason").select_option("no_budget")
    row.get_by_label("Note").fill("Budget frozen until Q3")
    row.get_by_role("button", name="Reject").click()
    expect(page.locator("#inbox-list .message")).to_contain_text("sent back to marketing")
    expect(rows).to_have_count(len(mine) - 2)
    assert page.locator("main").get_attribute("data-marker") == "same-page"  # swapped, not reloaded

    assert Lead.objects.get(pk=first.lead_id).stage_id == "sal"
    rejected = Lead.objects.get(pk=second.lead_id)
    assert (rejected.stage_id, rejected.owner) == ("nurturing", None)
    assert Handover.objects.get(pk=second.pk).note == "Budget frozen until Q3"


def test_the_inbox_works_with_javascript_off(browser, demo):
    rep = User.objects.filter(handovers__status="open").order_by("username").first()
    handover = Handover.objects.filter(rep=rep, status="open").first()
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, demo.url, rep.username)
    page.locator(f"#handover-{handover.pk}").get_by_role("button", name="Reject").click()  # no reason chosen
    # The browser itself insists on a reason (required); the handover stays open.
    assert Handover.objects.get(pk=handover.pk).status == "open"
    page.locator(f"#handover-{handover.pk}").get_by_role("button", name="Accept").click()
    expect(page.locator(".messages")).to_contain_text("accepted")
    assert Handover.objects.get(pk=handover.pk).status == "accepted"
    context.close()


def test_the_manager_sees_the_escalation_and_marketing_the_rejection(page, demo):
    from django.utils import timezone

    from leadcockpit.handover import actions

    first, second = Handover.objects.filter(status="open", rep__username__startswith="rep").order_by("pk")[:2]
    Handover.objects.filter(pk=first.pk).update(due_at=timezone.now() - timezone.timedelta(hours=2))
    assert actions.sla_tick()["escalated"] >= 1
    actions.reject(
        handover=second, by=second.rep, reason="wrong_timing", note="Budget cycle starts in spring"
    )

    manager = User.objects.get(groups__name="sales manager", team=first.team)
    log_in(page, demo.url, manager.username)
    page.goto(f"{demo.url}/inbox/")
    # The seed leaves several handovers past their deadline: the escalation of this one is among them.
    escalation = page.locator(".notification--escalation", has_text=first.lead.full_name)
    expect(escalation.first).to_contain_text("Escalation")
    page.get_by_role("button", name="Log out").click()

    log_in(page, demo.url, "marketing")
    page.get_by_role("link", name="Sales feedback").click()
    row = page.locator("#feedback-results tbody tr", has_text=second.lead.full_name)
    expect(row).to_contain_text("Wrong timing")
    expect(row).to_contain_text("Budget cycle starts in spring")
    page.get_by_label("Reason").select_option("no_budget")  # htmx swaps the results
    expect(page).to_have_url(re.compile(r"reason=no_budget"))
    expect(page.locator("#feedback-results")).not_to_contain_text(second.lead.full_name)
