from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Max, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh, trigger_client_event

from leadcockpit.accounts.decorators import role_required
from leadcockpit.accounts.roles import Role, role_of
from leadcockpit.leads.access import get_lead_for_user
from leadcockpit.leads.models import Channel, Lead, Touchpoint
from leadcockpit.leads.views import is_fragment_request

from . import actions
from .fields import OPERATOR_LABELS, attribute_catalogue, field_label
from .forms import (
    COLUMNS,
    CommentForm,
    CriterionForm,
    DiffForm,
    RejectForm,
    ScoreAsOfForm,
    ThresholdForm,
    show_value,
)
from .models import Criterion, Preview, RescoreJob, ScoreChange, ScoringModel, ScoringVersion, VersionComment

DRAFT_CHANGED = "draft-changed"  # the preview panel listens for it and asks for the figures of the new state


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def lead_score(request, pk):
    """The explanation ledger: every criterion's contribution as of now, the knock-outs, what is missing to MQL."""
    lead = get_lead_for_user(request, pk, Lead.objects.select_related("company"))
    context = actions.explain(lead=lead)
    # "Score as of": the recorded state at a past moment (at handover, say).
    as_of_form = ScoreAsOfForm(request.GET if "at" in request.GET else None)
    context["as_of_form"] = as_of_form
    if as_of_form.is_valid():
        context["at"] = as_of_form.cleaned_data["at"]
        context["state_at"] = ScoreChange.objects.as_of(lead, context["at"])
    template = "scoring/lead_score.html"
    if is_fragment_request(request):
        template += "#score-ledger"
    return render(request, template, context)


def _can_manage(user):
    return role_of(user) in (Role.ADMIN, Role.MARKETING)


def get_version_for_user(request, pk):
    """The version `pk` or 404. Every role reads every version: the model is what marketing and sales agree on."""
    return get_object_or_404(ScoringVersion.objects.select_related("model"), pk=pk)


@require_GET
@login_required
@role_required
def overview(request):
    """Models and their versions, approvals, and the latest full rescore."""
    models = ScoringModel.objects.prefetch_related(
        Prefetch(
            "versions",
            queryset=ScoringVersion.objects.prefetch_related("approvals__user").annotate(
                criteria_count=Count("criteria")
            ),
        )
    )
    context = {
        "models": models,
        "job": RescoreJob.objects.first(),
        "my_side": actions.side_of(request.user),
        "can_manage": _can_manage(request.user),
    }
    return render(request, "scoring/overview.html", context)


# --- the workbench: one version's criteria, thresholds, figures, sign-off and discussion -----------------------


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def version_detail(request, pk):
    version = get_version_for_user(request, pk)
    return render(request, "scoring/version.html", _workbench_context(request, version))


def _workbench_context(request, version, **bound):
    """Everything the workbench shows. `bound` holds forms that failed, to show them with their errors."""
    user = request.user
    can_edit = version.is_editable and _can_manage(user)
    siblings = list(version.model.versions.order_by("-number"))
    active = next((v for v in siblings if v.status == ScoringVersion.Status.ACTIVE), None)
    has_draft = any(v.status == ScoringVersion.Status.DRAFT for v in siblings)
    approvals = list(version.approvals.select_related("user"))
    side = actions.side_of(user)
    job = None
    if version.status == ScoringVersion.Status.ACTIVE and version.activated_at:
        job = RescoreJob.objects.filter(created_at__gte=version.activated_at).first()
    context = {
        "version": version,
        "can_edit": can_edit,
        "can_manage": _can_manage(user),
        "siblings": siblings,
        "active": active,
        "has_draft": has_draft,
        "approvals": approvals,
        "my_side": side,
        "my_approval": next((a for a in approvals if a.user_id == user.pk), None),
        "can_reject": version.status == ScoringVersion.Status.PROPOSED and side is not None,
        "job": job,
        "sections": _criteria_sections(version, can_edit, bound.get("criterion_forms", {})),
        "thresholds_form": bound.get("thresholds_form")
        or ThresholdForm(instance=version, read_only=not can_edit),
        "reject_form": bound.get("reject_form") or RejectForm(),
        **_comments_context(version, bound.get("comment_form")),
        **_preview_context(request, version),
    }
    return context


def _channel_choices():
    return [(channel.code, channel.name) for channel in Channel.objects.all()]


def _criteria_sections(version, can_edit, bound_forms, only_kind=None):
    """Per kind: a form per criterion (read-only unless the user may edit this draft) and a blank one to add."""
    criteria = list(version.criteria.order_by("kind", "position", "pk"))
    needs_channels = can_edit or any(c.kind == Criterion.Kind.INTEREST for c in criteria)
    channels = _channel_choices() if needs_channels else []
    catalogue = attribute_catalogue()  # the field choices of every row, read once
    sections = []
    for kind, label in Criterion.Kind.choices:
        if only_kind and kind != only_kind:
            continue
        rows = [
            bound_forms.get(c.pk)
            or CriterionForm(
                instance=c,
                prefix=f"c{c.pk}",
                channel_choices=channels,
                read_only=not can_edit,
                catalogue=catalogue,
            )
            for c in criteria
            if c.kind == kind
        ]
        add_form = None
        if can_edit:
            add_form = bound_forms.get(kind) or CriterionForm(
                instance=Criterion(version=version, kind=kind),
                prefix=f"new-{kind}",
                channel_choices=channels,
                catalogue=catalogue,
            )
        sample = add_form or CriterionForm(
            instance=Criterion(kind=kind), prefix="head", channel_choices=[], catalogue=catalogue
        )
        sections.append(
            {
                "kind": kind,
                "label": label,
                "rows": rows,
                "add_form": add_form,
                "headers": [sample.fields[name].label for name in COLUMNS[kind]],
            }
        )
    return sections


def _comments_context(version, comment_form=None):
    return {
        "comments": version.comments.select_related("author"),
        "comment_form": comment_form or CommentForm(),
    }


def _answer_edit(request, version, *, fragment, context, invalid=False, anchor=""):
    """After a write on the draft: htmx gets the fresh fragment (and the preview is told), a plain form goes back
    to the workbench; a form with errors comes back with them, 422."""
    if is_fragment_request(request):
        response = render(
            request, f"scoring/version.html#{fragment}", context, status=422 if invalid else 200
        )
        if not invalid:
            trigger_client_event(response, DRAFT_CHANGED, {"version": version.pk})
        return response
    if invalid:
        return render(
            request, "scoring/version.html", _workbench_context(request, version, **context), status=422
        )
    messages.success(request, _t("Saved."))
    return redirect(reverse("scoring:version", args=[version.pk]) + anchor)


def _refused(request, version):
    messages.error(
        request,
        _t("%(version)s is not a draft any more, so it cannot be changed; start a new draft from it.")
        % {"version": version},
    )
    if is_fragment_request(request):
        return HttpResponseClientRefresh()
    return redirect("scoring:version", pk=version.pk)


def _lock_draft(version):
    """Hold the version row for this transaction and tell whether it is still a draft: a proposal waits for the
    edit, and an edit that comes after the proposal is refused."""
    status = (
        ScoringVersion.objects.select_for_update()
        .filter(pk=version.pk)
        .values_list("status", flat=True)
        .first()
    )
    return status == ScoringVersion.Status.DRAFT


def _manager_only(request):
    if not _can_manage(request.user):
        raise PermissionDenied  # marketing and admins edit drafts; sales reads, comments and signs off


def _section_context(request, version, kind, bound_forms=None):
    sections = _criteria_sections(version, True, bound_forms or {}, only_kind=kind)
    return {"version": version, "can_edit": True, "section": sections[0]}


@require_POST
@login_required
@role_required
def save_criterion(request, pk):
    criterion = get_object_or_404(Criterion.objects.select_related("version__model"), pk=pk)
    version = criterion.version
    _manager_only(request)
    form = CriterionForm(
        request.POST, instance=criterion, prefix=f"c{pk}", channel_choices=_channel_choices()
    )
    with transaction.atomic():
        if not _lock_draft(version):
            return _refused(request, version)
        valid = form.is_valid()
        if valid:
            form.save()
    if valid:  # a fresh form: the stored values, normalised
        form = CriterionForm(
            instance=criterion, prefix=f"c{pk}", channel_choices=_channel_choices(), catalogue=form.catalogue
        )
    context = {"version": version, "can_edit": True, "form": form}
    if not valid and not is_fragment_request(request):
        context = {"criterion_forms": {pk: form}}
    return _answer_edit(
        request,
        version,
        fragment="criterion-row",
        context=context,
        invalid=not valid,
        anchor=f"#criterion-{pk}",
    )


@require_POST
@login_required
@role_required
def add_criterion(request, pk, kind):
    version = get_version_for_user(request, pk)
    _manager_only(request)
    if kind not in Criterion.Kind.values:
        raise PermissionDenied
    criterion = Criterion(version=version, kind=kind)
    form = CriterionForm(
        request.POST, instance=criterion, prefix=f"new-{kind}", channel_choices=_channel_choices()
    )
    with transaction.atomic():
        if not _lock_draft(version):
            return _refused(request, version)
        valid = form.is_valid()
        if valid:
            last = version.criteria.filter(kind=kind).aggregate(last=Max("position"))["last"]
            criterion.position = 0 if last is None else last + 1
            form.save()
    bound = {} if valid else {kind: form}
    if not is_fragment_request(request) and not valid:
        return _answer_edit(request, version, fragment="", context={"criterion_forms": bound}, invalid=True)
    return _answer_edit(
        request,
        version,
        fragment="criteria-section",
        context=_section_context(request, version, kind, bound),
        invalid=not valid,
        anchor=f"#criteria-{kind}",
    )


@require_POST
@login_required
@role_required
def delete_criterion(request, pk):
    criterion = get_object_or_404(Criterion.objects.select_related("version__model"), pk=pk)
    version = criterion.version
    _manager_only(request)
    with transaction.atomic():
        if not _lock_draft(version):
            return _refused(request, version)
        criterion.delete()
    return _answer_edit(
        request,
        version,
        fragment="criteria-section",
        context=_section_context(request, version, criterion.kind),
        anchor=f"#criteria-{criterion.kind}",
    )


@require_POST
@login_required
@role_required
def move_criterion(request, pk, direction):
    """Swap a criterion with its neighbour of the same kind; positions are renumbered 0…n-1 on the way."""
    criterion = get_object_or_404(Criterion.objects.select_related("version__model"), pk=pk)
    version = criterion.version
    _manager_only(request)
    if direction not in ("up", "down"):
        raise PermissionDenied
    with transaction.atomic():
        if not _lock_draft(version):
            return _refused(request, version)
        siblings = list(version.criteria.filter(kind=criterion.kind).order_by("position", "pk"))
        index = next(i for i, c in enumerate(siblings) if c.pk == criterion.pk)
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(siblings):
            siblings[index], siblings[other] = siblings[other], siblings[index]
        for position, sibling in enumerate(siblings):
            if sibling.position != position:
                Criterion.objects.filter(pk=sibling.pk).update(position=position)
    return _answer_edit(
        request,
        version,
        fragment="criteria-section",
        context=_section_context(request, version, criterion.kind),
        anchor=f"#criterion-{criterion.pk}",
    )


@require_POST
@login_required
@role_required
def save_thresholds(request, pk):
    version = get_version_for_user(request, pk)
    _manager_only(request)
    form = ThresholdForm(request.POST, instance=version)
    with transaction.atomic():
        if not _lock_draft(version):
            return _refused(request, version)
        valid = form.is_valid()
        if valid:
            form.save()
    if valid:
        form = ThresholdForm(instance=version)
    context = {"version": version, "can_edit": True, "thresholds_form": form}
    if not valid and not is_fragment_request(request):
        context = {"thresholds_form": form}
    return _answer_edit(
        request, version, fragment="thresholds", context=context, invalid=not valid, anchor="#thresholds"
    )


# --- the figures: what-if against the active versions, and the backtest ----------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def version_preview(request, pk):
    """The preview panel alone (htmx polls it while it is computed, and reloads it after an edit)."""
    version = get_version_for_user(request, pk)
    if not is_fragment_request(request):
        return redirect(reverse("scoring:version", args=[pk]) + "#preview-panel")
    context = {"version": version, **_preview_context(request, version)}
    return render(request, "scoring/version.html#preview-panel", context)


def _preview_context(request, version):
    from . import whatif

    preview = whatif.request_preview(version)
    if preview.status != Preview.Status.DONE:
        preview.refresh_from_db()  # a worker in this process (the embedded default) may have finished it already
    user = request.user
    done = preview.status == Preview.Status.DONE and isinstance(preview.result, dict)
    my_side = actions.side_of(user)
    return {
        "preview": preview,
        "waiting_for_worker": _waiting_for_worker(version, preview),
        "figures": _figures(preview.result, user) if done else None,
        "can_approve": done
        and version.status == ScoringVersion.Status.PROPOSED
        and my_side is not None
        and not version.approvals.filter(user=user).exists(),
    }


# Queued this long, no worker has taken the figures up: the panel says so rather than "Computing…" for ever.
PREVIEW_WAIT_NOTICE = timedelta(seconds=10)


def _waiting_for_worker(version, preview):
    """Whether these figures have waited in the queue for a while: no worker took them (or an earlier request for
    the same state, which request_preview gave up as stale and asked again)."""
    if preview.status != Preview.Status.QUEUED:
        return False
    since = timezone.now() - PREVIEW_WAIT_NOTICE
    if preview.created_at <= since:
        return True
    return Preview.objects.filter(
        version=version, fingerprint=preview.fingerprint, status=Preview.Status.QUEUED, created_at__lte=since
    ).exists()


BANDS = [("red", _("Red")), ("yellow", _("Yellow")), ("green", _("Green"))]
TEMPERATURES = [("cold", _("Cold")), ("warm", _("Warm")), ("hot", _("Hot"))]
FIT_LETTERS, INTEREST_NUMBERS = "ABCD", "1234"


def _number(value):
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _figures(result, user):
    """The preview's JSON made ready for the template: rows side by side, the chart's geometry, the sample of
    changed leads cut down to those this user may open."""
    sides = result.get("sides") or {}
    draft, active = sides.get("draft") or {}, sides.get("active") or {}

    def pairs(key, names):
        rows = []
        for name, label in names:
            new, old = _number((draft.get(key) or {}).get(name)), _number((active.get(key) or {}).get(name))
            delta = new - old if new is not None and old is not None else None
            rows.append({"key": name, "label": label, "draft": new, "active": old, "delta": delta})
        return rows

    def grid(source):
        grades = source.get("grades") or {}
        return [
            (letter, [_number(grades.get(f"{letter}{n}")) for n in INTEREST_NUMBERS])
            for letter in FIT_LETTERS
        ]

    capacity = result.get("capacity") or {}
    per_week = _number(draft.get("mql_per_week"))
    slots = _number(capacity.get("open_handovers"))
    return {
        "scope": _number(result.get("scope")),
        "as_of": result.get("as_of"),
        "window_days": _number(result.get("window_days")),
        "bands": pairs("bands", BANDS),
        "temperatures": pairs("temperatures", TEMPERATURES),
        "grid_draft": grid(draft),
        "grid_active": grid(active),
        "interest_numbers": INTEREST_NUMBERS,
        "mql": {
            "draft": _number(draft.get("mql")),
            "active": _number(active.get("mql")),
            "at_activation": _number(draft.get("mql_at_activation")),
            "per_week": per_week,
            "per_week_active": _number(active.get("mql_per_week")),
            "reps": _number(capacity.get("reps")),
            "slots": slots,
            "over": per_week is not None and slots is not None and per_week > slots,
        },
        "band_moves": [
            move
            for move in result.get("band_moves") or []
            if isinstance(move, dict) and _number(move.get("count")) is not None
        ],
        "changed_total": _number(result.get("changed_total")),
        **_changed_sample(result.get("changed") or [], user),
        "chart": _chart(result.get("histogram") or {}),
        "backtest": _backtest(result.get("backtest") or {}),
    }


def _changed_sample(changed, user):
    rows = [row for row in changed if isinstance(row, dict) and isinstance(row.get("id"), int)]
    if role_of(user) not in (Role.ADMIN, Role.MARKETING):  # sales sees the leads it may open, no more
        ids = [row["id"] for row in rows]
        visible = set(Lead.objects.visible_to(user).filter(pk__in=ids).values_list("pk", flat=True))
        hidden = len(rows)
        rows = [row for row in rows if row["id"] in visible]
        hidden -= len(rows)
    else:
        hidden = 0
    return {"changed": rows, "changed_hidden": hidden}


CHART_W, CHART_H, CHART_PAD_L, CHART_PAD_R, CHART_PAD_B, CHART_PAD_T = 640, 200, 36, 20, 24, 10


def _chart(histogram):
    """Bars of the score distribution, this version beside the active one, as numbers for an inline SVG."""
    edges = [_number(e) for e in histogram.get("edges") or []]
    draft = [_number(c) or 0 for c in histogram.get("draft") or []]
    active = [_number(c) or 0 for c in histogram.get("active") or []]
    bins = len(edges) - 1
    if bins < 1 or None in edges or len(draft) != bins or len(active) != bins:
        return None
    top = max([*draft, *active, 1])
    plot_w, plot_h = CHART_W - CHART_PAD_L - CHART_PAD_R, CHART_H - CHART_PAD_B - CHART_PAD_T
    slot = plot_w / bins
    bar = max(slot * 0.4, 1)
    bars, ticks = [], []
    base = CHART_PAD_T + plot_h
    for i in range(bins):
        x = CHART_PAD_L + i * slot
        for offset, series, count in ((slot * 0.1, "active", active[i]), (slot * 0.5, "draft", draft[i])):
            height = plot_h * count / top
            bars.append(
                {
                    "series": series,
                    "x": _svg(x + offset),
                    "y": _svg(base - height),
                    "w": _svg(bar),
                    "h": _svg(height),
                    "count": count,
                    "low": f"{edges[i]:g}",
                    "high": f"{edges[i + 1]:g}",
                }
            )
    step = max(1, -(-bins // 8))  # at most about eight labels on the axis
    for i in range(0, bins + 1, step):
        ticks.append({"x": _svg(CHART_PAD_L + i * slot), "label": f"{edges[i]:g}"})
    return {
        "w": CHART_W,
        "h": CHART_H,
        "bars": bars,
        "ticks": ticks,
        "base": base,
        "left": CHART_PAD_L,
        "right": CHART_W - CHART_PAD_R,
        "top": f"{top:g}",
        "top_y": CHART_PAD_T + 4,
        "label_y": CHART_H - 6,
    }


def _svg(number):
    """A coordinate as text: the template would write 12,5 in German, which SVG does not read."""
    return f"{number:.1f}"


def _backtest(backtest):
    min_trust = _number(backtest.get("min_trust")) or 30
    draft, active = backtest.get("draft") or {}, backtest.get("active") or {}

    def rate_rows(key, names):
        rows = []
        for name, label in names:
            cells = []
            for side in (draft, active):
                cell = (side.get(key) or {}).get(name) or {}
                n, rate = _number(cell.get("n")), _number(cell.get("rate"))
                cells.append(
                    {
                        "n": n,
                        "positives": _number(cell.get("positives")),
                        "percent": None if rate is None else rate * 100,
                        "low": n is None or n < min_trust,
                    }
                )
            rows.append({"label": label, "draft": cells[0], "active": cells[1]})
        return rows

    def metric(key):
        return {"draft": _number(draft.get(key)), "active": _number(active.get(key))}

    def grade_grid(rows, side):
        cells = iter(row[side] for row in rows)
        return [(letter, [next(cells) for _n in INTEREST_NUMBERS]) for letter in FIT_LETTERS]

    n = _number(backtest.get("n"))
    grades = [(f"{letter}{number}", "") for letter in FIT_LETTERS for number in INTEREST_NUMBERS]
    by_grade = rate_rows("by_grade", grades)
    return {
        "n": n,
        "positives": _number(backtest.get("positives")),
        "min_trust": min_trust,
        "low": n is None or n < min_trust,
        "outcome": backtest.get("outcome") if isinstance(backtest.get("outcome"), str) else "",
        "by_band": rate_rows("by_band", BANDS),
        "grade_grids": [
            (_("This"), grade_grid(by_grade, "draft")),
            (_("Active"), grade_grid(by_grade, "active")),
        ],
        "auc": metric("auc"),
        "lift": metric("top_decile_lift"),
        "precision": metric("precision"),
        "recall": metric("recall"),
        "at_threshold": metric("at_threshold"),
    }


# --- sign-off: propose, approve with the evidence, reject with a reason, roll back, new draft --------------------


@require_POST
@login_required
@role_required
def version_step(request, pk, step):
    """Propose, approve, roll back or start a draft; errors come back as a message, never a 500."""
    version = get_version_for_user(request, pk)
    if step not in DONE_MESSAGES or (step != "approve" and not _can_manage(request.user)):
        raise PermissionDenied
    back = (
        redirect("scoring:version", pk=version.pk)
        if request.POST.get("return_to") == "version"
        else redirect("scoring:overview")
    )
    kwargs = {}
    if step == "approve" and actions.side_of(request.user) is not None:
        from . import whatif

        # Each approver signs for the what-if and backtest in front of them: the approval carries the preview
        # they saw, and it must be this version's figures as it stands, not an older state's or another version's.
        if "preview" not in request.POST:
            messages.error(
                request,
                _t(
                    "Approve %(version)s on its page, below its what-if and backtest, so you see what you approve."
                )
                % {"version": version},
            )
            return redirect(reverse("scoring:version", args=[version.pk]) + "#preview-panel")
        kwargs["preview"] = whatif.preview_for_approval(version, request.POST["preview"])
        if kwargs["preview"] is None:
            messages.error(
                request,
                _t(
                    "The figures you approved are out of date or not this version's; look at the current ones first."
                ),
            )
            return back
    try:
        if step == "draft":
            result = actions.draft_from(version=version, by=request.user)
        else:
            result = STEPS[step](version=version, by=request.user, **kwargs)
    except actions.WorkflowError as exc:
        messages.error(request, str(exc))
        return back
    messages.success(request, DONE_MESSAGES[step] % {"version": result})
    if step in ("rollback", "draft"):
        return redirect("scoring:version", pk=result.pk)
    return back


STEPS = {"propose": actions.propose, "approve": actions.approve, "rollback": actions.rollback}
DONE_MESSAGES = {
    "propose": _("%(version)s is proposed; marketing and sales can now approve it."),
    "approve": _("Your approval of %(version)s is recorded."),
    "rollback": _("%(version)s is a new draft with the earlier version's criteria; propose it to roll back."),
    "draft": _("%(version)s is a new draft; change it, then propose it."),
}


@require_POST
@login_required
@role_required
def reject_version(request, pk):
    """Send a proposal back to draft, with the reason as a comment everyone sees."""
    version = get_version_for_user(request, pk)
    if actions.side_of(request.user) is None:
        raise PermissionDenied
    form = RejectForm(request.POST)
    if not form.is_valid():
        context = _workbench_context(request, version, reject_form=form)
        return render(request, "scoring/version.html", context, status=422)
    try:
        actions.reject(version=version, by=request.user, text=form.cleaned_data["text"])
    except actions.WorkflowError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _t("%(version)s is a draft again; the reason is in the comments.") % {"version": version}
        )
    return redirect("scoring:version", pk=version.pk)


@require_POST
@login_required
@role_required
def add_comment(request, pk):
    """Anyone who may read the version may discuss it."""
    version = get_version_for_user(request, pk)
    form = CommentForm(request.POST)
    valid = form.is_valid()
    if valid:
        VersionComment.objects.create(version=version, author=request.user, text=form.cleaned_data["text"])
    if is_fragment_request(request):
        context = {"version": version, **_comments_context(version, None if valid else form)}
        return render(request, "scoring/version.html#version-comments", context, status=200 if valid else 422)
    if not valid:
        context = _workbench_context(request, version, comment_form=form)
        return render(request, "scoring/version.html", context, status=422)
    return redirect(reverse("scoring:version", args=[pk]) + "#version-comments")


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def job_progress(request, pk):
    """The progress bar alone (htmx polls it while the job runs); without htmx, the overview shows it."""
    if not is_fragment_request(request):
        return redirect("scoring:overview")
    job = get_object_or_404(RescoreJob, pk=pk)
    return render(request, "scoring/overview.html#rescore-progress", {"job": job})


# --- the difference between two versions -------------------------------------------------------------------------

DIFF_FIELDS = [
    "kind",
    "label",
    "field",
    "operator",
    "value",
    "touchpoint_kinds",
    "url_contains",
    "channel",
    "search_contains",
    "points",
    "cap",
    "lookback_days",
    "half_life_days",
    "reason",
]


@require_GET
@login_required
@role_required
def diff(request):
    """What changed between two versions of a model: criteria added, removed and changed, and thresholds."""
    form = DiffForm(request.GET if request.GET else None)
    context = {"form": form}
    if form.is_valid():
        context.update(diff_versions(form.cleaned_data["a"], form.cleaned_data["b"]))
    return render(request, "scoring/diff.html", context, status=400 if form.is_bound and form.errors else 200)


def diff_versions(a, b):
    """Criteria matched by their key (kept across drafts), so an edited criterion shows as changed."""
    old = {c.key: c for c in a.criteria.select_related("channel").order_by("kind", "position", "pk")}
    new = {c.key: c for c in b.criteria.select_related("channel").order_by("kind", "position", "pk")}
    both = [*old.values(), *new.values()]
    catalogue = attribute_catalogue() if any(c.field.startswith("attribute:") for c in both) else {}
    changed = []
    for key, criterion in new.items():
        if key not in old:
            continue
        fields = [
            (
                Criterion._meta.get_field(name).verbose_name,
                _shown(old[key], name, catalogue),
                _shown(criterion, name, catalogue),
            )
            for name in DIFF_FIELDS
            if _stored(old[key], name) != _stored(criterion, name)
        ]
        if fields:
            changed.append({"criterion": criterion, "fields": fields})
    thresholds = [
        (ScoringVersion._meta.get_field(name).verbose_name, getattr(a, name), getattr(b, name))
        for name in actions.THRESHOLD_FIELDS
        if getattr(a, name) != getattr(b, name)
    ]
    return {
        "a": a,
        "b": b,
        "added": [_described(c, catalogue) for key, c in new.items() if key not in old],
        "removed": [_described(c, catalogue) for key, c in old.items() if key not in new],
        "changed": changed,
        "thresholds": thresholds,
        "same": not (changed or thresholds or set(old) ^ set(new)),
    }


def _stored(criterion, name):
    return criterion.channel_id if name == "channel" else getattr(criterion, name)


def _shown(criterion, name, catalogue=None):
    """A criterion's field as a person reads it: labels for keys, lists joined, ranges as "min – max"."""
    value = getattr(criterion, name)
    if name == "field":
        return field_label(value, catalogue) if value else "—"
    if name == "operator":
        return OPERATOR_LABELS.get(value, value or "—")
    if name == "touchpoint_kinds":
        labels = dict(Touchpoint.Kind.choices)
        return ", ".join(str(labels.get(kind, kind)) for kind in value or []) or "—"
    if name in ("kind", "reason"):
        return getattr(criterion, f"get_{name}_display")() or "—"
    if name == "channel":
        return value.name if value else "—"
    shown = show_value(value)
    return shown if shown != "" else "—"


def _described(criterion, catalogue=None):
    if criterion.kind == Criterion.Kind.INTEREST:
        parts = [_shown(criterion, "touchpoint_kinds")]
        parts += [
            f"“{getattr(criterion, n)}”" for n in ("url_contains", "search_contains") if getattr(criterion, n)
        ]
        if criterion.channel:
            parts.append(criterion.channel.name)
        condition = " · ".join(parts)
    else:
        condition = " ".join(
            str(part)
            for part in (
                _shown(criterion, "field", catalogue),
                _shown(criterion, "operator"),
                show_value(criterion.value),
            )
            if part
        )
    return {"criterion": criterion, "condition": condition}
