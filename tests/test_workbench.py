"""The scoring workbench: editing a draft, its figures, sign-off with the evidence, the diff, comments, reminders."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leadcockpit.scoring import actions, whatif
from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.models import (
    Approval,
    Criterion,
    Preview,
    ScoringModel,
    ScoringVersion,
    VersionComment,
)

from .factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def active(marketer, manager):
    return create_default_model(marketing_user=marketer, sales_user=manager)


@pytest.fixture
def draft(active, marketer):
    return actions.new_draft(model=active.model, by=marketer)


@pytest.fixture
def proposed(draft, marketer):
    draft.criteria.filter(label="Demo request").update(points=50)
    return actions.propose(version=draft, by=marketer)


@pytest.fixture
def computed(django_capture_on_commit_callbacks, tasks_in_process):
    """Run a call with the previews it asks for computed on commit, in this process, as the embedded default does."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def computed_page(computed, client, url):
    """The page once its preview is done (in tests, on-commit work runs when the request's capture ends)."""
    computed(client.get, url)
    return client.get(url).text


def done_preview(computed, version):
    preview = computed(whatif.request_preview, version)
    preview.refresh_from_db()
    assert preview.status == "done", preview.error
    return preview


def page(version):
    return reverse("scoring:version", args=[version.pk])


def criterion_url(criterion, *parts):
    if not parts:
        return reverse("scoring:criterion", args=[criterion.pk])
    if parts[0] == "delete":
        return reverse("scoring:delete_criterion", args=[criterion.pk])
    return reverse("scoring:move_criterion", args=[criterion.pk, parts[1]])


def row_data(criterion, **changes):
    """The POST of a criterion row as the page renders it, with some fields changed."""
    prefix = f"c{criterion.pk}"
    data = {"label": criterion.label, "points": criterion.points}
    if criterion.kind in ("fit", "knockout"):
        value = criterion.value
        data.update(field=criterion.field, operator=criterion.operator, value="", value_min="", value_max="")
        if isinstance(value, dict):
            data.update(value_min=value.get("min") or "", value_max=value.get("max") or "")
        elif isinstance(value, list):
            data["value"] = ", ".join(value)
        elif value is not None:
            data["value"] = value
        if criterion.kind == "knockout":
            data["reason"] = criterion.reason
            data.pop("points")
    else:
        data.update(
            touchpoint_kinds=criterion.touchpoint_kinds,
            url_contains=criterion.url_contains,
            channel=criterion.channel_id or "",
            search_contains=criterion.search_contains,
            cap=criterion.cap if criterion.cap is not None else "",
            lookback_days=criterion.lookback_days or "",
            half_life_days=criterion.half_life_days or "",
        )
    data.update(changes)
    return {f"{prefix}-{key}": value for key, value in data.items()}


def threshold_data(version, **changes):
    data = {name: getattr(version, name) for name in actions.THRESHOLD_FIELDS}
    data = {name: "" if value is None else value for name, value in data.items()}
    data["note"] = version.note
    data.update(changes)
    return data


def cell(html, prefix, name):
    """The table cell of one field of a criterion row (where its error must appear)."""
    match = re.search(
        rf'<td class="cell cell--{name}">(?:(?!</td>).)*name="{prefix}-{name}.*?</td>', html, re.S
    )
    assert match, f"no cell for {prefix}-{name}"
    return match.group(0)


def hx(client, url, data=None):
    return client.post(url, data or {}, HTTP_HX_REQUEST="true")


# --- who may do what ---------------------------------------------------------------------------------------------


def test_every_role_opens_the_workbench_but_only_marketing_and_admins_get_editable_rows(
    client_for, draft, marketer, admin_user, manager, rep
):
    demo = draft.criteria.get(label="Demo request")
    for user in (marketer, admin_user):
        text = client_for(user).get(page(draft)).text
        assert f'hx-post="{criterion_url(demo)}"' in text
        assert not re.search(rf'<input[^>]*name="c{demo.pk}-points"[^>]*disabled', text)
        assert ">Propose</button>" in text
    for user in (manager, rep):
        response = client_for(user).get(page(draft))
        assert response.status_code == 200
        assert re.search(rf'<input[^>]*name="c{demo.pk}-points"[^>]*disabled', response.text)
        assert f'hx-post="{criterion_url(demo)}"' not in response.text
        assert ">Propose</button>" not in response.text
        assert f'action="{reverse("scoring:comment", args=[draft.pk])}"' in response.text  # they discuss it


def test_reps_and_sales_managers_are_refused_every_edit_and_the_draft_stays_as_it_was(
    client_for, draft, manager, rep
):
    demo = draft.criteria.get(label="Demo request")
    before = list(draft.criteria.order_by("pk").values_list("pk", "points", "position"))
    for user in (rep, manager):
        client = client_for(user)
        posts = [
            (criterion_url(demo), row_data(demo, points=999)),
            (reverse("scoring:add_criterion", args=[draft.pk, "fit"]), {}),
            (criterion_url(demo, "delete"), {}),
            (criterion_url(demo, "move", "up"), {}),
            (reverse("scoring:thresholds", args=[draft.pk]), threshold_data(draft, mql_threshold=1)),
            (reverse("scoring:version_step", args=[draft.pk, "propose"]), {}),
            (reverse("scoring:version_step", args=[draft.pk, "draft"]), {}),
        ]
        for url, data in posts:
            assert client.post(url, data).status_code == 403, url
            assert hx(client, url, data).status_code == 403, url
    assert list(draft.criteria.order_by("pk").values_list("pk", "points", "position")) == before
    draft.refresh_from_db()
    assert (draft.status, draft.mql_threshold) == ("draft", 100)


def test_a_rep_can_neither_approve_nor_reject(client_for, proposed, rep):
    client = client_for(rep)
    preview = whatif.request_preview(proposed)
    response = client.post(
        reverse("scoring:version_step", args=[proposed.pk, "approve"]),
        {"preview": preview.pk, "return_to": "version"},
        follow=True,
    )
    assert "Only marketing and sales" in response.text
    assert client.post(reverse("scoring:reject", args=[proposed.pk]), {"text": "no"}).status_code == 403
    assert "Approve with these figures" not in client.get(page(proposed)).text
    proposed.refresh_from_db()
    assert (proposed.status, proposed.approvals.count()) == ("proposed", 0)


# --- editing a draft -----------------------------------------------------------------------------------------------


def test_saving_a_criterion_with_htmx_answers_its_row_and_tells_the_preview(client_for, draft, marketer):
    demo = draft.criteria.get(label="Demo request")
    response = hx(client_for(marketer), criterion_url(demo), row_data(demo, points="55", label="Demo booked"))
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="criterion-{demo.pk}"')
    assert "<html" not in response.text
    assert "draft-changed" in response["HX-Trigger"]
    demo.refresh_from_db()
    assert (demo.points, demo.label) == (55, "Demo booked")


def test_a_plain_form_saves_the_row_and_returns_to_the_workbench(client_for, draft, marketer):
    size = draft.criteria.get(label="Mid-sized company (50–5,000 employees)")
    client = client_for(marketer)
    response = client.post(criterion_url(size), row_data(size, value_min="100", value_max=""))
    assert response.status_code == 302
    assert response["Location"] == f"{page(draft)}#criterion-{size.pk}"
    size.refresh_from_db()
    assert size.value == {"min": 100.0, "max": None}
    assert "Saved." in client.get(response["Location"]).text


@pytest.mark.parametrize(
    ("label", "changes", "name", "message"),
    [
        ("Decision maker", {"field": "password"}, "field", "Select a valid choice"),
        ("Decision maker", {"operator": "drop_table"}, "operator", "Select a valid choice"),
        ("Decision maker", {"value": "ceo"}, "value", "Role has no value ceo"),
        ("Decision maker", {"operator": "range"}, "operator", "Role cannot be tested with this operator"),
        (
            "Mid-sized company (50–5,000 employees)",
            {"value_min": "", "value_max": ""},
            "value",
            "A range needs a minimum, a maximum or both",
        ),
        ("Decision maker", {"points": "lots"}, "points", "Enter a number."),
        ("Decision maker", {"points": "1e400"}, "points", "Enter a number."),
        (
            "Mid-sized company (50–5,000 employees)",
            {"operator": "contains"},
            "operator",
            "cannot be tested with this operator",
        ),
        ("Mid-sized company (50–5,000 employees)", {"value_min": "abc"}, "value", "Minimum needs a number."),
        (
            "Mid-sized company (50–5,000 employees)",
            {"value_min": "9", "value_max": "1"},
            "value",
            "minimum is above",
        ),
        ("Target industry", {"value": " , "}, "value", "A list needs between 1 and"),
        ("Demo request", {"touchpoint_kinds": []}, "touchpoint_kinds", "Say which activity counts"),
        ("Demo request", {"touchpoint_kinds": ["hacking"]}, "touchpoint_kinds", "Select a valid choice"),
        ("Demo request", {"cap": "0"}, "cap", "A cap must be above zero"),
        ("Demo request", {"half_life_days": "-3"}, "half_life_days", "A half-life must be above zero"),
        ("Demo request", {"points": "0"}, "points", "needs points per occurrence"),
        ("Demo request", {"lookback_days": str(10**12)}, "lookback_days", "less than or equal"),
        ("Demo request", {"channel": "no-such-channel"}, "channel", "Select a valid choice"),
        ("Competitor", {"reason": ""}, "reason", "This field is required."),
        ("Competitor", {"label": ""}, "label", "This field is required."),
    ],
)
def test_a_bad_criterion_comes_back_with_the_message_next_to_its_field(
    client_for, draft, marketer, label, changes, name, message
):
    criterion = draft.criteria.get(label=label)
    before = Criterion.objects.filter(pk=criterion.pk).values().get()
    client = client_for(marketer)
    response = hx(client, criterion_url(criterion), row_data(criterion, **changes))
    assert response.status_code == 422
    assert message in cell(response.text, f"c{criterion.pk}", name)
    assert "draft-changed" not in response.get("HX-Trigger", "")
    # Without JavaScript: the whole page, the row with its error in place of the stored one.
    response = client.post(criterion_url(criterion), row_data(criterion, **changes))
    assert response.status_code == 422
    assert message in cell(response.text, f"c{criterion.pk}", name)
    assert Criterion.objects.filter(pk=criterion.pk).values().get() == before


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"c{pk}-label": "x" * 100_000, "c{pk}-points": "1"},
        {
            "c{pk}-label": "nul\x00byte",
            "c{pk}-field": "\x00",
            "c{pk}-operator": "equals",
            "c{pk}-value": "\x00",
        },
        {
            "c{pk}-field": "employee_count",
            "c{pk}-operator": "equals",
            "c{pk}-value": "NaN",
            "c{pk}-points": "1",
        },
        {
            "c{pk}-field": "employee_count",
            "c{pk}-operator": "range",
            "c{pk}-value_min": "inf",
            "c{pk}-points": "1",
        },
        {"c{pk}-field": ["contact_role", "budget"], "c{pk}-operator": ["equals"], "c{pk}-points": ["1", "2"]},
    ],
)
def test_junk_posts_are_answered_with_errors_never_a_500(client_for, draft, marketer, data):
    criterion = draft.criteria.get(label="Decision maker")
    data = {key.format(pk=criterion.pk): value for key, value in data.items()}
    client = client_for(marketer)
    for post in (client.post, lambda url, d: hx(client, url, d)):
        assert post(criterion_url(criterion), data).status_code == 422
        assert post(reverse("scoring:add_criterion", args=[draft.pk, "fit"]), data).status_code == 422
        assert post(reverse("scoring:thresholds", args=[draft.pk]), data).status_code == 422
    assert client.post(reverse("scoring:add_criterion", args=[draft.pk, "nonsense"]), data).status_code == 403
    assert client.post(criterion_url(criterion, "move", "sideways")).status_code == 403
    criterion.refresh_from_db()
    assert (criterion.field, criterion.value, criterion.points) == ("contact_role", "decision_maker", 20)


def labels(version, kind):
    return list(version.criteria.filter(kind=kind).order_by("position", "pk").values_list("label", flat=True))


def test_criteria_are_added_moved_and_removed_per_kind(client_for, draft, marketer):
    client = client_for(marketer)
    add = reverse("scoring:add_criterion", args=[draft.pk, "interest"])
    new = {
        "new-interest-label": "Webinar sign-up",
        "new-interest-touchpoint_kinds": ["webinar_registration"],
        "new-interest-points": "6",
        "new-interest-cap": "18",
        "new-interest-half_life_days": "30",
    }
    response = hx(client, add, new)
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="criteria-interest"')
    assert "draft-changed" in response["HX-Trigger"]
    created = draft.criteria.get(label="Webinar sign-up")
    assert (created.kind, created.touchpoint_kinds, created.points, created.cap) == (
        "interest",
        ["webinar_registration"],
        6,
        18,
    )
    assert labels(draft, "interest")[-1] == "Webinar sign-up"
    assert f'id="criterion-{created.pk}"' in response.text

    response = hx(client, add, {**new, "new-interest-points": "0", "new-interest-label": "Nothing"})
    assert response.status_code == 422
    assert "needs points per occurrence" in response.text
    assert not draft.criteria.filter(label="Nothing").exists()

    before = labels(draft, "interest")
    response = hx(client, criterion_url(created, "move", "up"))
    assert response.status_code == 200
    assert labels(draft, "interest") == [*before[:-2], before[-1], before[-2]]
    client.post(criterion_url(created, "move", "up"))  # the plain form does the same
    assert labels(draft, "interest")[-3] == "Webinar sign-up"
    first = draft.criteria.filter(kind="interest").order_by("position", "pk").first()
    hx(client, criterion_url(first, "move", "up"))  # the first stays first
    assert labels(draft, "interest")[0] == first.label
    # Knock-outs and fit keep their own order.
    assert labels(draft, "knockout") == [
        "Student without decision power",
        "Competitor",
        "Industry outside the target group",
    ]

    response = hx(client, criterion_url(created, "delete"))
    assert response.status_code == 200
    assert "Webinar sign-up" not in labels(draft, "interest")
    assert f'id="criterion-{created.pk}"' not in response.text


def test_a_fit_criterion_added_without_javascript_lands_at_the_end(client_for, draft, marketer):
    client = client_for(marketer)
    response = client.post(
        reverse("scoring:add_criterion", args=[draft.pk, "fit"]),
        {
            "new-fit-label": "Mid-market revenue",
            "new-fit-field": "annual_revenue",
            "new-fit-operator": "range",
            "new-fit-value_min": "1000000",
            "new-fit-value_max": "50000000",
            "new-fit-points": "7",
        },
    )
    assert response.status_code == 302
    criterion = draft.criteria.get(label="Mid-market revenue")
    assert criterion.value == {"min": 1_000_000.0, "max": 50_000_000.0}
    assert labels(draft, "fit")[-1] == "Mid-market revenue"


def test_thresholds_are_validated_with_the_message_next_to_the_field(client_for, draft, marketer):
    client = client_for(marketer)
    url = reverse("scoring:thresholds", args=[draft.pk])
    response = hx(client, url, threshold_data(draft, yellow_from=80, green_from=60))
    assert response.status_code == 422
    assert re.search(r'name="green_from".*?Green must start at or above yellow', response.text, re.S)
    response = client.post(url, threshold_data(draft, mql_threshold="a hundred"))
    assert response.status_code == 422
    assert re.search(r'name="mql_threshold".*?Enter a number', response.text, re.S)
    response = hx(client, url, threshold_data(draft, fit_b_from=90))
    assert "Fit grades must be ordered" in response.text
    draft.refresh_from_db()
    assert (draft.yellow_from, draft.green_from, draft.mql_threshold) == (40, 100, 100)

    response = hx(client, url, threshold_data(draft, mql_threshold=90, min_fit_for_mql="", note="Lower bar"))
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<form id="thresholds"')
    assert "draft-changed" in response["HX-Trigger"]
    draft.refresh_from_db()
    assert (draft.mql_threshold, draft.min_fit_for_mql, draft.note) == (90, None, "Lower bar")


def test_a_proposed_version_refuses_every_edit_with_a_message(client_for, proposed, marketer):
    client = client_for(marketer)
    demo = proposed.criteria.get(label="Demo request")
    before = list(proposed.criteria.order_by("pk").values_list("pk", "points", "position"))
    posts = [
        (criterion_url(demo), row_data(demo, points=1)),
        (reverse("scoring:add_criterion", args=[proposed.pk, "fit"]), {}),
        (criterion_url(demo, "delete"), {}),
        (criterion_url(demo, "move", "down"), {}),
        (reverse("scoring:thresholds", args=[proposed.pk]), threshold_data(proposed, mql_threshold=1)),
    ]
    for url, data in posts:
        response = client.post(url, data, follow=True)
        assert "is not a draft any more" in response.text, url
        assert hx(client, url, data)["HX-Refresh"] == "true"
    assert list(proposed.criteria.order_by("pk").values_list("pk", "points", "position")) == before
    proposed.refresh_from_db()
    assert proposed.mql_threshold == 100
    text = client.get(page(proposed)).text
    assert f'hx-post="{criterion_url(demo)}"' not in text
    assert ">Add</button>" not in text


# --- the figures ---------------------------------------------------------------------------------------------------


def test_the_preview_panel_polls_while_it_is_computed_and_stops_when_done(client_for, draft, marketer):
    queued = Preview.objects.create(
        version=draft, fingerprint=whatif.fingerprint(draft), as_of=timezone.now()
    )
    client = client_for(marketer)
    url = reverse("scoring:version_preview", args=[draft.pk])
    fragment = client.get(url, HTTP_HX_REQUEST="true").text
    assert fragment.lstrip().startswith('<section id="preview-panel"')
    assert "Computing…" in fragment
    LeadFactory.create_batch(2)
    assert 'hx-trigger="every 1s, draft-changed from:body"' in fragment
    Preview.objects.filter(pk=queued.pk).update(status="done", result=whatif.compute(draft))
    fragment = client.get(url, HTTP_HX_REQUEST="true").text
    assert "every 1s" not in fragment
    assert 'hx-trigger="draft-changed from:body"' in fragment
    assert "Traffic light" in fragment
    assert '<svg class="histogram"' in fragment
    assert client.get(url).status_code == 302  # without htmx: the page


def test_a_failed_preview_says_so_and_offers_to_try_again(client_for, draft, marketer, monkeypatch):
    failed = Preview.objects.create(
        version=draft, fingerprint="x", as_of=timezone.now(), status="failed", error=f"boom {XSS}"
    )
    monkeypatch.setattr(whatif, "request_preview", lambda version: failed)
    fragment = (
        client_for(marketer)
        .get(reverse("scoring:version_preview", args=[draft.pk]), HTTP_HX_REQUEST="true")
        .text
    )
    assert "The figures could not be computed." in fragment
    assert f"boom {ESCAPED}" in fragment
    assert "every 1s" not in fragment
    assert "Try again" in fragment


def test_the_preview_compares_with_the_active_version_and_escapes_lead_names(
    client_for, draft, marketer, rep, computed
):
    LeadFactory.create_batch(3)
    hostile = LeadFactory(first_name=XSS, last_name="", company__industry="software")
    mine = LeadFactory(first_name="Rita", last_name="Repslead", owner=rep)
    # Every lead carries red now (never scored); this draft makes every lead green.
    ScoringVersion.objects.filter(pk=draft.pk).update(yellow_from=-1000, green_from=-1000)
    text = computed_page(computed, client_for(marketer), page(draft))
    assert ESCAPED in text
    assert XSS not in text
    assert f'href="{reverse("leads:detail", args=[hostile.pk])}"' in text
    assert "5 leads change their traffic light." in text
    assert re.search(
        r"Red</th><td class=\"num\">0</td><td class=\"num\">5</td><td class=\"num delta\">-5", text
    )
    assert "Fewer than 30 leads with a known outcome" in text  # no outcomes in this database
    assert "n=0" in text
    # A rep sees the figures, and of the sample only the leads they may open.
    text = computed_page(computed, client_for(rep), page(draft))
    assert "5 leads change their traffic light." in text
    assert f'href="{reverse("leads:detail", args=[mine.pk])}"' in text
    assert ESCAPED not in text
    assert "4 of the sample are not yours to open." in text


# --- sign-off ------------------------------------------------------------------------------------------------------


def approve(client, version, preview):
    return client.post(
        reverse("scoring:version_step", args=[version.pk, "approve"]),
        {"preview": preview, "return_to": "version"},
        follow=True,
    )


def test_approving_posts_the_figures_seen_and_other_or_stale_figures_are_refused(
    client_for, proposed, active, marketer, manager, computed
):
    client = client_for(marketer)
    text = computed_page(computed, client, page(proposed))
    preview = Preview.objects.get(version=proposed, status="done")
    assert f'<input type="hidden" name="preview" value="{preview.pk}">' in text
    assert ">Approve with these figures</button>" in text

    other = done_preview(computed, active)
    stale = Preview.objects.create(
        version=proposed, fingerprint="an earlier state", status="done", as_of=timezone.now(), result={}
    )
    for junk in (other.pk, stale.pk, "abc", "", 10**20):
        assert "out of date or not this version" in approve(client, proposed, junk).text
    assert not proposed.approvals.exists()

    response = computed(approve, client, proposed, preview.pk)
    assert response.redirect_chain[-1][0] == page(proposed)
    assert "Your approval of" in response.text
    approval = Approval.objects.get(version=proposed)
    assert (approval.user, approval.side, approval.preview) == (marketer, "marketing", preview)
    assert "Approve with these figures" not in response.text  # signed already
    assert "You approved on" in response.text


def test_the_approve_button_waits_for_the_figures(client_for, proposed, marketer):
    Preview.objects.create(version=proposed, fingerprint=whatif.fingerprint(proposed), as_of=timezone.now())
    text = client_for(marketer).get(page(proposed)).text
    assert "Computing…" in text
    assert "Approve with these figures" not in text


def test_the_same_person_cannot_approve_twice_nor_sign_for_both_sides(
    client_for, proposed, marketer, computed
):
    from django.contrib.auth.models import Group

    preview = done_preview(computed, proposed)
    both = UserFactory(role="marketing", username="both-sides")
    both.groups.add(Group.objects.get(name="sales manager"))  # signs for sales, the stronger role
    client = client_for(both)
    assert "Your approval of" in approve(client, proposed, preview.pk).text
    assert "approved this version already" in approve(client, proposed, preview.pk).text
    assert list(proposed.approvals.values_list("user__username", "side")) == [("both-sides", "sales")]
    other_manager = UserFactory(role="sales manager")
    assert (
        "side has approved this version already"
        in approve(client_for(other_manager), proposed, preview.pk).text
    )
    assert proposed.approvals.count() == 1


def test_both_sides_approving_on_the_workbench_activates_and_shows_the_rescore(
    client_for, proposed, active, manager, computed
):
    LeadFactory.create_batch(2)
    preview = done_preview(computed, proposed)
    computed(approve, client_for(UserFactory(role="marketing")), proposed, preview.pk)
    assert "Your approval of" in computed(approve, client_for(manager), proposed, preview.pk).text
    proposed.refresh_from_db()
    assert proposed.status == "active"
    text = client_for(manager).get(page(proposed)).text
    assert 'id="rescore-progress"' in text
    assert "2 leads scored" in text


def test_a_rejected_proposal_is_a_draft_again_with_the_reason_in_the_discussion(
    client_for, proposed, marketer, manager, computed
):
    preview = done_preview(computed, proposed)
    approve(client_for(marketer), proposed, preview.pk)
    client = client_for(manager)
    url = reverse("scoring:reject", args=[proposed.pk])

    response = client.post(url, {"text": "   "})
    assert response.status_code == 422
    assert "Say why you reject the proposal." in response.text
    proposed.refresh_from_db()
    assert proposed.status == "proposed"

    response = client.post(url, {"text": f"Demo requests are worth less {XSS}"}, follow=True)
    proposed.refresh_from_db()
    assert (proposed.status, proposed.proposed_at, proposed.approvals.count()) == ("draft", None, 0)
    comment = VersionComment.objects.get(version=proposed)
    assert (comment.kind, comment.author) == ("rejection", manager)
    assert "is a draft again" in response.text
    assert 'class="comment comment--rejection"' in response.text
    assert f"Demo requests are worth less {ESCAPED}" in response.text
    assert "Only a proposed version can be rejected" in client.post(url, {"text": "again"}, follow=True).text


def test_a_new_draft_from_the_workbench_and_never_a_second_one(client_for, active, marketer):
    client = client_for(marketer)
    assert ">New draft from this version</button>" in client.get(page(active)).text
    response = client.post(reverse("scoring:version_step", args=[active.pk, "draft"]), follow=True)
    draft = ScoringVersion.objects.get(model=active.model, status="draft")
    assert response.redirect_chain[-1][0] == page(draft)
    assert draft.criteria.count() == active.criteria.count()
    text = client.get(page(active)).text
    assert "New draft from this version" not in text
    assert f'<a href="{page(draft)}">The draft v2 is open</a>' in text
    response = client.post(reverse("scoring:version_step", args=[active.pk, "draft"]), follow=True)
    assert "has a draft already" in response.text
    assert ScoringVersion.objects.filter(model=active.model).count() == 2


# --- diff ------------------------------------------------------------------------------------------------------------


def test_the_diff_shows_criteria_added_removed_changed_and_thresholds(client_for, draft, active, rep):
    draft.criteria.filter(label="Demo request").update(points=50, label="Demo booked")
    draft.criteria.filter(label="Site search").delete()
    draft.criteria.create(
        kind="interest", label="Webinar sign-up", touchpoint_kinds=["webinar_registration"], points=6
    )
    ScoringVersion.objects.filter(pk=draft.pk).update(mql_threshold=90)
    text = client_for(rep).get(reverse("scoring:diff"), {"a": active.pk, "b": draft.pk}).text
    added = re.search(r'id="diff-added".*?</section>', text, re.S).group(0)
    removed = re.search(r'id="diff-removed".*?</section>', text, re.S).group(0)
    changed = re.search(r'id="diff-changed".*?</section>', text, re.S).group(0)
    thresholds = re.search(r'id="diff-thresholds".*?</section>', text, re.S).group(0)
    assert "Webinar sign-up" in added
    assert "Webinar registration" in added
    assert "Site search" in removed
    assert "Demo booked" not in removed
    assert "Demo booked" in changed
    assert re.search(r"Points</td><td><del>40</del></td><td><ins>50</ins>", changed)
    assert re.search(r"Label</td><td><del>Demo request</del></td><td><ins>Demo booked</ins>", changed)
    assert re.search(
        r"MQL threshold</th><td class=\"num\"><del>100.0</del></td><td>→</td><td class=\"num\"><ins>90.0",
        thresholds,
    )
    assert "Target industry" not in text.split('id="diff-thresholds"')[1]  # unchanged criteria stay out

    same = client_for(rep).get(reverse("scoring:diff"), {"a": active.pk, "b": active.pk}).text
    assert "have the same criteria and thresholds" in same
    assert (
        f'href="{reverse("scoring:diff")}?a={active.pk}&amp;b={draft.pk}"'
        in client_for(rep).get(page(draft)).text
    )


def test_the_diff_answers_bad_or_foreign_ids_with_a_message(client_for, active, marketer):
    other = ScoringVersion.objects.create(model=ScoringModel.objects.create(name="DACH"), number=1)
    client = client_for(marketer)
    for params, message in [
        ({"a": "abc", "b": active.pk}, "Select a valid choice"),
        ({"a": 999_999, "b": active.pk}, "Select a valid choice"),
        ({"a": active.pk}, "This field is required"),
        ({"a": active.pk, "b": other.pk}, "Choose two versions of the same model."),
        ({"a": "1\x00", "b": ["1", "2"]}, "Null characters are not allowed"),
    ]:
        response = client.get(reverse("scoring:diff"), params)
        assert response.status_code == 400
        assert message in response.text
    assert client.get(reverse("scoring:diff")).status_code == 200  # the empty form


# --- comments --------------------------------------------------------------------------------------------------------


def test_anyone_who_reads_a_version_may_comment_and_the_text_is_escaped(client_for, draft, rep, manager):
    url = reverse("scoring:comment", args=[draft.pk])
    response = hx(client_for(rep), url, {"text": f"Too many students? {XSS}"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="version-comments"')
    assert f"Too many students? {ESCAPED}" in response.text
    assert XSS not in response.text
    comment = VersionComment.objects.get()
    assert (comment.author, comment.kind, comment.version) == (rep, "comment", draft)

    response = client_for(manager).post(url, {"text": "Agreed."})
    assert response["Location"] == f"{page(draft)}#version-comments"
    text = client_for(manager).get(page(draft)).text
    assert text.index("Too many students?") < text.index("Agreed.")
    assert XSS not in text

    response = hx(client_for(rep), url, {"text": "  "})
    assert response.status_code == 422
    assert "This field is required." in response.text
    assert client_for(rep).post(url, {"text": "x" * 4001}).status_code == 422
    assert VersionComment.objects.count() == 2


# --- review reminder -------------------------------------------------------------------------------------------------


def activated_days_ago(version, days):
    ScoringVersion.objects.filter(pk=version.pk).update(activated_at=timezone.now() - timedelta(days=days))


def test_the_review_banner_shows_for_marketing_and_sales_managers_once_the_period_is_over(
    client_for, active, marketer, manager, admin_user, rep
):
    activated_days_ago(active, 91)
    for user in (marketer, manager, admin_user):
        text = client_for(user).get(reverse("leads:list")).text
        assert 'class="review-banner"' in text
        assert "review due" in text
        assert f'href="{page(active)}"' in text
    assert "review-banner" not in client_for(rep).get(reverse("leads:list")).text

    activated_days_ago(active, 89)
    assert "review-banner" not in client_for(marketer).get(reverse("leads:list")).text
    ScoringModel.objects.filter(pk=active.model_id).update(review_after_days=30)
    assert "review-banner" in client_for(marketer).get(reverse("scoring:overview")).text


def test_the_review_reminder_costs_reps_no_query_and_reviewers_one(client_for, active, marketer, rep):
    activated_days_ago(active, 200)
    for user, expected in ((rep, 0), (marketer, 1)):
        client = client_for(user)
        client.get(reverse("leads:list"))
        with CaptureQueriesContext(connection) as queries:
            client.get(reverse("leads:list"))
        reads = [q["sql"] for q in queries if "scoring_scoringversion" in q["sql"]]
        assert len(reads) == expected, reads


# --- speed -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user_fixture", ["marketer", "rep"])
def test_the_workbench_stays_within_its_query_budget_whatever_the_number_of_criteria(
    client_for, draft, request, user_fixture, django_assert_max_num_queries, computed
):
    LeadFactory.create_batch(3)
    client = client_for(request.getfixturevalue(user_fixture))
    computed(client.get, page(draft))  # computes the preview once
    # Session, user, role; version, its siblings, approvals, criteria, channels, the imported attributes (the field
    # choices); the last activation or full rescore and the preview (its fingerprint reads the criteria again);
    # comments; the review reminder or, for a rep, which changed leads they may open.
    with django_assert_max_num_queries(14):
        assert client.get(page(draft)).status_code == 200
    for n in range(15):
        draft.criteria.create(kind="fit", label=f"Extra {n}", field="phone", operator="is_set", points=1)
    computed(client.get, page(draft))
    with django_assert_max_num_queries(14):
        response = client.get(page(draft))
    assert response.text.count('class="criterion-row') == 27 + 15


def test_the_overview_links_every_version_to_its_workbench(client_for, draft, active, rep):
    text = client_for(rep).get(reverse("scoring:overview")).text
    assert f'<a href="{page(active)}">v1</a>' in text
    assert f'<a href="{page(draft)}">v2</a>' in text


def test_the_workbench_in_german_keeps_the_chart_readable(client_for, draft, marketer, computed):
    LeadFactory.create_batch(3)
    client = client_for(marketer)
    computed(client.get, page(draft), HTTP_ACCEPT_LANGUAGE="de")
    text = client.get(page(draft), HTTP_ACCEPT_LANGUAGE="de").text
    assert '<html lang="de">' in text
    bars = re.findall(
        r'<rect class="bar bar--\w+" x="([^"]*)" y="([^"]*)" width="([^"]*)" height="([^"]*)"', text
    )
    assert bars
    assert all(re.fullmatch(r"-?\d+\.\d", number) for bar in bars for number in bar)  # 12.5, never 12,5
    assert re.search(r'name="c\d+-points" value="20\.0"', text)


# --- in a browser ------------------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_edits_save_as_you_type_errors_appear_in_the_row_and_the_figures_follow(
    page, live_server, tasks_in_process
):
    from playwright.sync_api import expect

    from leadcockpit.demo.seeding import DEMO_PASSWORD

    from .test_browser import log_in

    marketer = UserFactory(role="marketing", username="mkt", password=DEMO_PASSWORD)
    manager = UserFactory(role="sales manager", username="mgr")
    active = create_default_model(marketing_user=marketer, sales_user=manager)
    draft = actions.new_draft(model=active.model, by=marketer)
    LeadFactory.create_batch(4)
    demo = draft.criteria.get(label="Demo request")
    role = draft.criteria.get(label="Decision maker")

    log_in(page, live_server.url, "mkt")
    page.goto(f"{live_server.url}{reverse('scoring:version', args=[draft.pk])}")
    panel = page.locator("#preview-panel")
    expect(panel).to_contain_text("Traffic light")
    previews = Preview.objects.filter(version=draft).count()

    points = page.locator(f"#id_c{demo.pk}-points")
    points.fill("")
    points.type("55")
    expect(page.locator(f"#criterion-{demo.pk}")).not_to_have_class(re.compile("htmx-request"))
    expect(points).to_have_value("55.0")  # the row came back from the server, normalised
    demo.refresh_from_db()
    assert demo.points == 55
    for _attempt in range(50):  # the panel asks for the figures of the new state
        if Preview.objects.filter(version=draft).count() > previews:
            break
        page.wait_for_timeout(100)
    assert Preview.objects.filter(version=draft, fingerprint=whatif.fingerprint(draft)).exists()
    expect(panel).to_contain_text("Traffic light")

    page.locator(f"#id_c{role.pk}-operator").select_option("range")
    expect(page.locator(f"#criterion-{role.pk} .cell--operator")).to_contain_text(
        "Role cannot be tested with this operator"
    )
    role.refresh_from_db()
    assert role.operator == "equals"

    first = draft.criteria.filter(kind="fit").order_by("position", "pk").first()
    page.locator(f"#criterion-{first.pk}").get_by_role("button", name="Move down").click()
    expect(page.locator("#criteria-fit tbody tr").nth(1)).to_have_id(f"criterion-{first.pk}")
    assert labels(draft, "fit")[1] == first.label

    page.get_by_role("button", name="Propose").click()
    expect(page.locator(".page-head .badge")).to_have_text("Proposed")
    expect(page.locator(f"#id_c{demo.pk}-points")).to_be_disabled()


def test_the_admin_edits_the_review_period_and_shows_comments_and_previews_read_only(
    client_for, proposed, admin_user, manager, computed
):
    done_preview(computed, proposed)
    actions.reject(version=proposed, by=manager, text=f"Not yet {XSS}")
    client = client_for(admin_user)
    model = proposed.model
    change = client.get(reverse("admin:scoring_scoringmodel_change", args=[model.pk]))
    assert 'name="review_after_days"' in change.text
    for name in ("versioncomment", "preview"):
        listing = client.get(reverse(f"admin:scoring_{name}_changelist"))
        assert listing.status_code == 200
        assert reverse(f"admin:scoring_{name}_add") not in listing.text
    assert ESCAPED in client.get(reverse("admin:scoring_versioncomment_changelist")).text
    preview = Preview.objects.filter(version=proposed).first()
    detail = client.get(reverse("admin:scoring_preview_change", args=[preview.pk]))
    assert detail.status_code == 200
    assert 'name="status"' not in detail.text  # read-only
