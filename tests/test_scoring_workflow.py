"""Versions: draft → proposed (immutable) → joint approval by marketing and sales → active → rollback."""

import pytest
from django.urls import reverse

from leadcockpit.scoring import actions, whatif
from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.models import Approval, RescoreJob, ScoringVersion

from .factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(marketer, manager):
    return create_default_model(marketing_user=marketer, sales_user=manager)


@pytest.fixture
def proposed(active, marketer):
    draft = actions.new_draft(model=active.model, by=marketer)
    draft.criteria.filter(label="Demo request").update(points=50)
    return actions.propose(version=draft, by=marketer)


def step(client, version, name, **data):
    return client.post(reverse("scoring:version_step", args=[version.pk, name]), data, follow=True)


@pytest.fixture
def seen(django_capture_on_commit_callbacks, tasks_in_process):
    """The id of the version's done preview: the figures an approver has in front of them on the workbench."""

    def preview_of(version):
        with django_capture_on_commit_callbacks(execute=True):
            preview = whatif.request_preview(version)
        preview.refresh_from_db()
        assert preview.status == "done", preview.error
        return preview.pk

    return preview_of


def test_a_new_draft_copies_criteria_and_thresholds(active, marketer):
    draft = actions.new_draft(model=active.model, by=marketer)
    assert (draft.number, draft.status, draft.min_fit_for_mql) == (2, "draft", active.min_fit_for_mql)
    assert draft.criteria.count() == active.criteria.count()
    assert active.criteria.count() == 27  # the original keeps its own


def test_joint_approval_by_two_people_activates_and_rescores_everyone(
    client_for, proposed, active, marketer, manager, seen, django_capture_on_commit_callbacks
):
    LeadFactory.create_batch(3)
    second_marketer = UserFactory(role="marketing")
    preview = seen(proposed)
    with django_capture_on_commit_callbacks(execute=True):
        assert "is recorded" in step(client_for(second_marketer), proposed, "approve", preview=preview).text
        response = step(client_for(manager), proposed, "approve", preview=preview)
    proposed.refresh_from_db()
    active.refresh_from_db()
    assert (proposed.status, active.status) == ("active", "retired")
    assert set(proposed.approvals.values_list("side", flat=True)) == {"marketing", "sales"}
    assert "Your approval" in response.text
    job = RescoreJob.objects.get()
    assert (job.status, job.scored) == ("done", 3)
    assert "100 %" in client_for(manager).get(reverse("scoring:overview")).text


def test_the_same_person_cannot_approve_twice_and_a_side_approves_once(client_for, proposed, marketer, seen):
    client = client_for(marketer)
    preview = seen(proposed)
    step(client, proposed, "approve", preview=preview)
    assert "approved this version already" in step(client, proposed, "approve", preview=preview).text
    other = UserFactory(role="marketing")
    assert "side has approved" in step(client_for(other), proposed, "approve", preview=preview).text
    assert proposed.approvals.count() == 1


def test_an_approval_without_the_figures_seen_is_refused_and_sent_to_the_workbench(
    client_for, proposed, marketer, manager
):
    """The overview once posted a bare 'approve': each approver must see the what-if and backtest first."""
    for user in (marketer, manager):
        response = step(client_for(user), proposed, "approve")
        assert response.status_code == 200
        assert (
            response.redirect_chain[-1][0]
            == reverse("scoring:version", args=[proposed.pk]) + "#preview-panel"
        )
        assert "on its page, below its what-if and backtest" in response.text
    assert not Approval.objects.filter(version=proposed).exists()
    proposed.refresh_from_db()
    assert proposed.status == "proposed"


def test_reps_and_admins_do_not_sign_off(client_for, proposed, rep, admin_user):
    assert "Only marketing and sales" in step(client_for(rep), proposed, "approve").text
    assert "Only marketing and sales" in step(client_for(admin_user), proposed, "approve").text
    assert not proposed.approvals.exists()


def test_only_marketing_and_admins_propose_or_roll_back(client_for, active, manager, rep):
    draft = actions.new_draft(model=active.model, by=manager)
    for user in (manager, rep):
        response = client_for(user).post(reverse("scoring:version_step", args=[draft.pk, "propose"]))
        assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_steps_need_post_and_unknown_steps_are_refused(client_for, proposed, marketer):
    client = client_for(marketer)
    assert client.get(reverse("scoring:version_step", args=[proposed.pk, "approve"])).status_code == 405
    assert client.post(reverse("scoring:version_step", args=[proposed.pk, "delete"])).status_code == 403
    assert client.post(reverse("scoring:version_step", args=[99999, "approve"])).status_code == 404


def test_a_proposed_version_is_immutable(client, proposed, marketer):
    client.force_login(marketer)
    assert "Only a draft can be proposed" in step(client, proposed, "propose").text
    url = reverse("admin:scoring_scoringversion_change", args=[proposed.pk])
    response = client.post(url, {"mql_threshold": 1})
    proposed.refresh_from_db()
    assert proposed.mql_threshold == 100
    assert response.status_code in (200, 403)


def test_rollback_is_a_new_draft_of_the_earlier_version_that_needs_both_approvals_again(
    client_for, proposed, active, marketer, manager, tasks_in_process
):
    actions.approve(version=proposed, by=UserFactory(role="marketing"))
    actions.approve(version=proposed, by=manager)
    active.refresh_from_db()
    assert active.status == "retired"
    response = step(client_for(marketer), active, "rollback")
    draft = ScoringVersion.objects.get(model=active.model, status="draft")
    assert (draft.number, draft.note) == (3, "Rollback to v1")
    assert response.redirect_chain[-1][0] == reverse("scoring:version", args=[draft.pk])
    # The draft carries v1's criteria (v2 had changed "Demo request"), and v2 stays active until it is approved.
    assert draft.criteria.get(label="Demo request").points == active.criteria.get(label="Demo request").points
    assert set(draft.criteria.values_list("key", flat=True)) == set(
        active.criteria.values_list("key", flat=True)
    )
    proposed.refresh_from_db()
    active.refresh_from_db()
    assert (active.status, proposed.status) == ("retired", "active")
    assert not draft.approvals.exists()
    actions.propose(version=draft, by=marketer)
    actions.approve(version=draft, by=UserFactory(role="marketing"))
    actions.approve(version=draft, by=manager)
    draft.refresh_from_db()
    proposed.refresh_from_db()
    assert (draft.status, proposed.status) == ("active", "retired")
    assert ScoringVersion.objects.filter(model=active.model, status="active").count() == 1


def test_a_second_draft_is_refused_and_only_retired_versions_are_rolled_back_to(
    client_for, proposed, active, marketer, manager
):
    client = client_for(marketer)
    assert "Only a retired version" in step(client, active, "rollback").text
    actions.new_draft(model=active.model, by=marketer)
    assert "has a draft already" in step(client, active, "draft").text
    assert ScoringVersion.objects.filter(model=active.model, status="draft").count() == 1


def test_progress_bar_polls_while_running_and_stops_when_done(client_for, marketer, active):
    job = RescoreJob.objects.create(
        reason="Test", as_of=active.activated_at, first_id=1, next_id=50, last_id=100, status="running"
    )
    client = client_for(marketer)
    fragment = client.get(reverse("scoring:job_progress", args=[job.pk]), HTTP_HX_REQUEST="true").text
    assert 'hx-trigger="every 1s"' in fragment
    assert 'value="49"' in fragment
    job.status = "done"
    job.save()
    fragment = client.get(reverse("scoring:job_progress", args=[job.pk]), HTTP_HX_REQUEST="true").text
    assert "hx-trigger" not in fragment
    assert 'value="100"' in fragment
    assert client.get(reverse("scoring:job_progress", args=[job.pk])).status_code == 302


def test_overview_shows_versions_and_approvals(client_for, manager, active, proposed):
    text = client_for(manager).get(reverse("scoring:overview")).text
    assert "v1" in text
    assert "v2" in text
    # A sales manager may approve the proposed version, on its page, with the figures in front of them.
    approve = reverse("scoring:version", args=[proposed.pk]) + "#preview-panel"
    assert f'<a class="button" href="{approve}">Review and approve</a>' in text
    assert reverse("scoring:version_step", args=[proposed.pk, "approve"]) not in text
    assert ">Propose</button>" not in text
