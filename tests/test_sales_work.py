"""Sales work on a lead: the sales protocol, stage moves through the lifecycle table, BANT qualification."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.leads.models import Lead, SalesActivity, StageChange
from leadcockpit.scoring.models import DirtyLead

from .factories import LeadFactory, SalesActivityFactory

pytestmark = pytest.mark.django_db


def url(name, lead):
    return reverse(f"handover:{name}", args=[lead.pk])


def activity_data(**overrides):
    data = {
        "kind": "call",
        "outcome": "reached",
        "occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "note": "Spoke with the CFO <b>about</b> budget",
        "next_follow_up": (timezone.localdate() + timedelta(days=7)).isoformat(),
    }
    return {**data, **overrides}


def test_a_rep_logs_a_call_on_their_lead(client_for, rep):
    lead = LeadFactory(owner=rep, stage_id="sql")
    response = client_for(rep).post(url("log_activity", lead), activity_data())
    assert response.status_code == 302
    activity = SalesActivity.objects.get(lead=lead)
    assert (activity.rep, activity.kind, activity.outcome) == (rep, "call", "reached")
    page = client_for(rep).get(url("sales_work", lead)).text
    assert "Spoke with the CFO &lt;b&gt;about&lt;/b&gt; budget" in page


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "telepathy"},
        {"outcome": "'; DROP TABLE"},
        {"occurred_at": "soon"},
        {"occurred_at": "2099-01-01T10:00"},
        {"occurred_at": "0001-01-01T00:00"},
        {"next_follow_up": "9999-12-31"},
        {"note": "x" * 5001},
    ],
)
def test_bad_protocol_input_gets_a_message_and_saves_nothing(client_for, rep, bad):
    lead = LeadFactory(owner=rep, stage_id="sql")
    response = client_for(rep).post(url("log_activity", lead), activity_data(**bad), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert 'role="alert"' in response.text or "errorlist" in response.text
    assert not SalesActivity.objects.exists()


def test_marketing_reads_the_protocol_but_does_not_write_it_and_other_reps_do_not_see_it(
    client_for, rep, other_rep, marketer
):
    lead = LeadFactory(owner=rep, stage_id="sql")
    SalesActivityFactory(lead=lead, rep=rep, note="first call")
    assert "first call" in client_for(marketer).get(url("sales_work", lead)).text
    assert "Log a call" not in client_for(marketer).get(url("sales_work", lead)).text
    assert client_for(marketer).post(url("log_activity", lead), activity_data()).status_code == 403
    assert client_for(other_rep).get(url("sales_work", lead)).status_code == 404
    assert client_for(other_rep).post(url("log_activity", lead), activity_data()).status_code == 404
    assert client_for(rep).get(url("log_activity", lead)).status_code == 405
    assert SalesActivity.objects.count() == 1


def test_stage_moves_follow_the_table_and_going_back_needs_a_reason(client_for, rep):
    lead = LeadFactory(owner=rep, stage_id="sql")
    client = client_for(rep)
    offered = [
        code
        for code, _label in client.get(url("sales_work", lead))
        .context["stage_form"]
        .fields["to_stage"]
        .choices
    ]
    assert {"first_contact", "won", "lost"} <= set(offered)
    assert not {"mql", "sal", "sql"} & set(offered)
    assert client.post(url("move_stage", lead), {"to_stage": "presentation"}).status_code == 302
    response = client.post(url("move_stage", lead), {"to_stage": "first_contact"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "Say why the lead goes back" in response.text
    response = client.post(url("move_stage", lead), {"to_stage": "first_contact", "reason": "new contact"})
    assert response.status_code == 302
    assert Lead.objects.get(pk=lead.pk).stage_id == "first_contact"
    assert StageChange.objects.filter(lead=lead, actor=rep).count() == 2
    # A stage the table does not offer from here is refused as a form error.
    assert (
        client.post(url("move_stage", lead), {"to_stage": "mgl"}, HTTP_HX_REQUEST="true").status_code == 422
    )


def test_handed_over_leads_are_decided_in_the_inbox_not_moved_here(client_for, rep):
    lead = LeadFactory(owner=rep, stage_id="handed_over")
    assert client_for(rep).post(url("move_stage", lead), {"to_stage": "sal"}).status_code == 422
    assert Lead.objects.get(pk=lead.pk).stage_id == "handed_over"


def test_bant_qualification_makes_a_warm_or_hot_lead_an_sql_and_keeps_a_cold_one(client_for, rep):
    hot = LeadFactory(owner=rep, stage_id="sal")
    response = client_for(rep).post(
        url("qualify", hot),
        {"budget": "approved", "authority": "decides", "need": "acute", "timeframe": "3m"},
    )
    assert response.status_code == 302
    hot.refresh_from_db()
    assert (hot.stage_id, hot.qualification, hot.budget) == ("sql", "hot", "approved")
    assert DirtyLead.objects.filter(lead=hot).exists()  # BANT answers are fit criteria: rescored soon
    cold = LeadFactory(owner=rep, stage_id="sal")
    client_for(rep).post(
        url("qualify", cold), {"budget": "none", "authority": "none", "need": "none", "timeframe": "later"}
    )
    cold.refresh_from_db()
    assert (cold.stage_id, cold.qualification) == ("sal", "cold")
    bad = client_for(rep).post(url("qualify", cold), {"budget": "lots"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422
    not_sal = LeadFactory(owner=rep, stage_id="sql")
    assert client_for(rep).post(url("qualify", not_sal), {"budget": "approved"}).status_code == 409


def test_due_follow_ups_appear_in_the_inbox_until_a_later_entry_is_logged(client_for, rep):
    lead = LeadFactory(owner=rep, stage_id="first_contact", last_name="Wiedervorlage")
    earlier = timezone.now() - timedelta(days=3)
    SalesActivityFactory(lead=lead, rep=rep, occurred_at=earlier, next_follow_up=timezone.localdate())
    SalesActivityFactory(
        lead=LeadFactory(owner=rep),
        rep=rep,
        occurred_at=earlier,
        next_follow_up=timezone.localdate() + timedelta(days=2),
    )  # not due yet
    assert [a.lead_id for a in client_for(rep).get(reverse("handover:inbox")).context["follow_ups"]] == [
        lead.pk
    ]
    SalesActivityFactory(lead=lead, rep=rep, occurred_at=timezone.now())
    assert client_for(rep).get(reverse("handover:inbox")).context["follow_ups"] == []


def test_qualifying_a_lead_someone_has_moved_on_keeps_no_answers(client_for, rep, manager):
    lead = LeadFactory(owner=rep, stage_id="sal", budget="unknown")
    Lead.objects.get(pk=lead.pk).move_to("lost", by=manager)  # between the rep's form and its submission
    response = client_for(rep).post(
        url("qualify", lead),
        {"budget": "approved", "authority": "decides", "need": "acute", "timeframe": "3m"},
    )
    assert response.status_code == 409
    lead.refresh_from_db()
    assert (lead.stage_id, lead.budget, lead.qualification) == ("lost", "unknown", "")
