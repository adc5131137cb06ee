"""Evidence-based scoring on screen: learn from the known outcomes, read the explanation, turn the suggestion into
a draft (learning.py), and the validity report of a version tracked over time (validity.py).

Marketing and admins run learning, make drafts and ask for a report; sales managers read everything; reps read
none of it (learning.can_learn, learning.can_view_evidence).
"""

import logging
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.leads.models import Touchpoint
from leadcockpit.leads.views import is_fragment_request
from leadcockpit.lib import svgchart

from . import learning, validity
from .fields import FIT_FIELDS, attribute_catalogue
from .forms import DraftFromRunForm, LearningOptionsForm
from .models import Criterion, LearningRun, ScoringModel, ScoringVersion, ValidityReport

log = logging.getLogger(__name__)

STEPS = {
    "": _("Waiting for a worker"),
    "loading": _("Loading the leads whose outcome is known"),
    "features": _("Building the candidate criteria and checking them for leaks"),
    "fitting": _("Fitting the model"),
    "explaining": _("Explaining each effect"),
    "evaluating": _("Judging the model on the held-out leads"),
    "done": _("Done"),
}
RUNS_SHOWN = 10
WAIT_NOTICE = timedelta(seconds=10)  # queued this long: say that no worker has taken it up


# --- access --------------------------------------------------------------------------------------------------------


def _viewer_only(request):
    if not learning.can_view_evidence(request.user):
        raise PermissionDenied  # marketing, admins and sales managers read the evidence; reps do not


def _learner_only(request):
    if not learning.can_learn(request.user):
        raise PermissionDenied  # marketing and admins learn, make drafts and ask for reports


def get_model_for_evidence(request, pk):
    """The scoring model `pk` for its evidence page, or 404; 403 for whoever may not read evidence."""
    _viewer_only(request)
    return get_object_or_404(ScoringModel, pk=pk)


def get_run_for_evidence(request, pk, model=None):
    """A learning run (of `model`, if given), or 404; 403 for whoever may not read evidence."""
    _viewer_only(request)
    runs = LearningRun.objects.select_related("model", "draft", "created_by")
    if model is not None:
        runs = runs.filter(model=model)
    return get_object_or_404(runs, pk=pk)


def get_version_for_evidence(request, pk):
    """A version for its validity report, or 404; 403 for whoever may not read evidence."""
    _viewer_only(request)
    return get_object_or_404(ScoringVersion.objects.select_related("model"), pk=pk)


# --- the evidence page: learning runs of one model ------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def evidence(request, pk):
    """Learning on a model's outcomes: the options, the runs, and the chosen run (the newest by default) with its
    progress or its explanation, exclusions, held-out figures and suggestion. htmx polls the run's region."""
    model = get_model_for_evidence(request, pk)
    run = _chosen_run(request, model)
    if is_fragment_request(request):
        context = {"model": model, **_run_context(request, model, run)}
        return render(request, "scoring/evidence.html#learning-run", context)
    catalogue = attribute_catalogue()
    context = {"model": model, **_run_context(request, model, run, catalogue)}
    context.update(_page_context(request, model, catalogue))
    return render(request, "scoring/evidence.html", context)


def _chosen_run(request, model):
    """The run asked for with ?run= (it must be this model's), else the newest; None before the first."""
    asked = request.GET.get("run")
    if asked is None:
        return model.learning_runs.select_related("draft", "created_by").first()
    if not asked.isdigit():
        raise Http404
    return get_run_for_evidence(request, int(asked), model=model)


def _page_context(request, model, catalogue, form=None):
    """The options form and the list of runs (without their results, which can be large)."""
    runs = list(model.learning_runs.defer("result").select_related("created_by", "draft")[:RUNS_SHOWN])
    can_learn = learning.can_learn(request.user)
    choices = _option_choices(model, catalogue)
    if form is None and can_learn:
        initial = {}
        if runs:  # start from the options of the last run
            previous = runs[0].options or {}
            allowed_ex = {key for key, _label in choices["exclude"]}
            allowed_in = {key for key, _label in choices["include"]}
            initial = {
                "exclude": [k for k in previous.get("exclude", []) if k in allowed_ex],
                "include": [k for k in previous.get("include", []) if k in allowed_in],
            }
            for name in ("holdout", "mql_probability"):
                if isinstance(previous.get(name), int | float):
                    initial[name] = round(previous[name] * 100)
            if isinstance(previous.get("l2"), int | float):
                initial["l2"] = previous["l2"]
        form = LearningOptionsForm(
            initial=initial, exclude_choices=choices["exclude"], include_choices=choices["include"]
        )
    return {
        "runs": runs,
        "can_learn": can_learn,
        "options_form": form,
        "locked": choices["locked"],
        "include_rows": list(zip(form["include"], choices["findings"], strict=True)) if form else [],
    }


def _option_choices(model, catalogue):
    """What the options form offers: the fields the learner may use (to leave out), the findings of the last
    finished run's leakage guard (to use anyway), and the fields locked out by who enters them."""
    # Only the guard's findings of the last finished run, not its whole result.
    excluded = (
        model.learning_runs.filter(status=LearningRun.Status.DONE)
        .values_list("result__excluded", flat=True)
        .first()
    )
    exclude, locked = [], []
    for key, spec in FIT_FIELDS.items():
        if key in learning.BUILTIN_PROVENANCE:
            locked.append(_locked(spec.label, learning.BUILTIN_PROVENANCE[key]))
        elif key in learning.BUILTIN_SKIP:
            locked.append(_locked(spec.label, "id"))
        else:
            exclude.append((key, spec.label))
    for attribute in sorted(catalogue.values(), key=lambda a: a.label.lower()):
        if attribute.provenance in learning.PROVENANCE_REASONS:
            locked.append(_locked(attribute.label, attribute.provenance))
        else:
            exclude.append((attribute.key, attribute.label))
    exclude += [(f"activity:{kind}", label) for kind, label in Touchpoint.Kind.choices]
    findings, include = [], []
    for item in excluded if isinstance(excluded, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        if item.get("code") in learning.NEVER_INCLUDED or item.get("code") == "excluded":
            continue
        findings.append({**item, "reason": exclusion_reason(item)})
        include.append((item["key"], item["label"]))
    return {"exclude": exclude, "include": include, "locked": _by_reason(locked), "findings": findings}


def _locked(label, provenance):
    return {"label": label, "provenance": provenance}


def _by_reason(locked):
    """The locked fields grouped by why: one line per reason."""
    groups = {}
    for item in locked:
        groups.setdefault(item["provenance"], []).append(item["label"])
    return [
        {"labels": labels, "reason": learning.PROVENANCE_REASONS[provenance]}
        for provenance, labels in groups.items()
    ]


def _run_context(request, model, run, catalogue=None):
    """The chosen run: its progress while it runs, its figures once done."""
    context = {"run": run, "can_learn": learning.can_learn(request.user)}
    if run is None:
        return context
    context["step"] = STEPS.get(run.step, run.step)
    context["polling"] = run.status in (LearningRun.Status.QUEUED, LearningRun.Status.RUNNING)
    context["waiting_for_worker"] = (
        run.status == LearningRun.Status.QUEUED and run.created_at <= timezone.now() - WAIT_NOTICE
    )
    result = run.result if isinstance(run.result, dict) else {}
    if run.status != LearningRun.Status.DONE or "features" not in result:
        return context
    catalogue = attribute_catalogue() if catalogue is None else catalogue
    scale = result.get("scale") or {}
    context.update(
        {
            "done": True,
            "result": result,
            "holdout_percent": _percent((result.get("split") or {}).get("holdout")),
            "mql_percent": _percent(scale.get("mql_probability")),
            **_explanation(result, catalogue),
            "exclusions": [_exclusion(item) for item in result.get("excluded", [])],
            "holdout": _holdout(result.get("holdout") or {}),
            "suggestion": _suggestion(result, catalogue),
            "scale": scale,
            "open_draft": None
            if run.draft_id
            else model.versions.filter(status=ScoringVersion.Status.DRAFT).first(),
            "draft_form": DraftFromRunForm(),
        }
    )
    return context


def _explanation(result, catalogue):
    """The features in words, the most relevant first: those the data tells from no effect, by p-value, then the
    rest; the baselines apart (they are what the others are compared with)."""
    rows, baselines = [], []
    for feature in result.get("features", []):
        label = learning.feature_label(feature, catalogue)
        if feature.get("reference"):
            baselines.append(label)
            continue
        low, high = feature["odds_ratio_ci"]
        rows.append(
            {
                "label": label,
                "sentence": _after_label(learning.describe(feature, catalogue), label),
                "odds_ratio": feature["odds_ratio"],
                "low": low,
                "high": high,
                "up": feature["coef"] > 0,
                "points": feature.get("points"),
                "per_occurrence": feature["role"] == "per_occurrence",
                "rate_with": _percent(feature.get("rate_with")),
                "rate_without": _percent(feature.get("rate_without")),
                "support": feature["support"],
                "n_without": feature.get("n_without"),
                "p_value": feature["p_value"],
                "significant": feature["significant"],
                "coef": feature["coef"],
            }
        )
    rows.sort(key=lambda r: (not r["significant"], r["p_value"], -abs(r["coef"])))
    return {"features": rows, "baselines": baselines}


def _after_label(sentence, label):
    """describe() starts with the feature's label, which the table shows above it already."""
    prefix = f"{label}: "
    return sentence[len(prefix) :] if sentence.startswith(prefix) else sentence


def _percent(rate):
    return None if rate is None else 100 * rate


def _exclusion(item):
    return {
        "label": item.get("label", ""),
        "reason": exclusion_reason(item),
        "locked": item.get("code") in learning.NEVER_INCLUDED,
        "by_choice": item.get("code") == "excluded",
        "included_anyway": bool(item.get("included_anyway")),
    }


def exclusion_reason(item):
    """Why the guard left a field out, in the reader's language: the run stored its reason in the language the
    worker ran in, so the reasons are said again here from their code and details (the same words as learning.py);
    an unknown code keeps the stored text."""
    code, details = item.get("code"), item.get("details") or {}
    try:
        if code in learning.PROVENANCE_REASONS:
            return str(learning.PROVENANCE_REASONS[code])
        if code == "excluded":
            return _t("Left out by choice.")
        if code == "single_auc":
            return _t(
                "On its own it ranks converted above unconverted leads %(auc)s of the time: it knows the outcome."
            ) % {"auc": learning._percent(details["auc"])}
        if code == "after_outcome":
            return _t(
                "%(share)s of these touchpoints of closed leads were recorded after the outcome was known."
            ) % {"share": learning._percent(details["after"] / details["of"])}
        if code == "separation":
            shown = ", ".join(
                f"“{value['value']}” ({learning._percent(value['rate'])})" for value in details["values"][:4]
            )
            return _t(
                "Values held by %(share)s of the leads almost decide the outcome (%(values)s): it looks "
                "filled in once the outcome was known."
            ) % {"share": learning._percent(details["coverage"]), "values": shown}
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    return item.get("reason", "")


def _holdout(holdout):
    """The held-out figures with a lift chart; rates as percentages."""
    deciles = [
        {
            **d,
            "percent": _percent(d["rate"]),
            "low": _percent(d["rate_low"]),
            "high": _percent(d["rate_high"]),
        }
        for d in holdout.get("deciles", [])
    ]
    return {
        **holdout,
        "deciles": deciles,
        "lift_chart": _lift_chart(deciles, _t("Lift per decile of the held-out leads")) if deciles else None,
        "calibration": _calibration(holdout.get("calibration", [])),
    }


def _lift_chart(deciles, label):
    return svgchart.bar_chart(
        [str(d["decile"]) for d in deciles],
        [(_t("Lift"), [d["lift"] for d in deciles], None)],
        label=label,
        value_format=lambda v: formats.number_format(v, 2, use_l10n=True),
        height=200,
    )


def _calibration(bands):
    """Bands of predicted probability that hold leads, with percentages."""
    return [
        {
            **band,
            "from_percent": _percent(band["from"]),
            "to_percent": _percent(band["to"]),
            "predicted_percent": _percent(band["predicted"]),
            "observed_percent": _percent(band["observed"]),
            "low": _percent(band["observed_low"]),
            "high": _percent(band["observed_high"]),
        }
        for band in bands
        if band.get("n")
    ]


def _suggestion(result, catalogue):
    suggestion = result.get("suggestion") or {}
    reasons = dict(Criterion.Reason.choices)
    criteria = []
    for item in suggestion.get("criteria", []):
        criteria.append(
            {
                "kind": item["kind"],
                "label": learning.condition_label(item, catalogue),
                "points": item["points"],
                "cap": item.get("cap"),
            }
        )
    criteria.sort(key=lambda c: (c["kind"] != "fit", -c["points"]))
    knockouts = [
        {"label": learning.condition_label(item, catalogue), "reason": reasons.get(item.get("reason"), "")}
        for item in suggestion.get("knockouts", [])
    ]
    return {"criteria": criteria, "knockouts": knockouts}


@require_POST
@login_required
@role_required
def start_learning(request, pk):
    """Queue a learning run with the chosen options; a bad option comes back with its message (422)."""
    model = get_model_for_evidence(request, pk)
    _learner_only(request)
    catalogue = attribute_catalogue()
    choices = _option_choices(model, catalogue)
    form = LearningOptionsForm(
        request.POST, exclude_choices=choices["exclude"], include_choices=choices["include"]
    )
    if not form.is_valid():
        run = model.learning_runs.select_related("draft", "created_by").first()
        context = {"model": model, **_run_context(request, model, run, catalogue)}
        context.update(_page_context(request, model, catalogue, form=form))
        return render(request, "scoring/evidence.html", context, status=422)
    busy = (
        model.learning_runs.filter(
            status__in=[LearningRun.Status.QUEUED, LearningRun.Status.RUNNING],
            created_at__gte=timezone.now() - learning.STALE_AFTER,
        )
        .only("pk")
        .first()
    )
    if busy is not None:  # a second click, or a colleague's run: one at a time
        messages.error(
            request, _t("Learning run #%(run)s is still running; wait for its findings.") % {"run": busy.pk}
        )
        return redirect(reverse("scoring:evidence", args=[model.pk]) + f"?run={busy.pk}#learning-run")
    try:
        run = learning.start_learning(model=model, by=request.user, options=form.options())
    except learning.LearningError as exc:
        messages.error(request, str(exc))
        return redirect("scoring:evidence", pk=model.pk)
    messages.success(
        request, _t("Learning run #%(run)s has started; its findings appear below.") % {"run": run.pk}
    )
    return redirect(reverse("scoring:evidence", args=[model.pk]) + f"?run={run.pk}#learning-run")


@require_POST
@login_required
@role_required
def draft_from_run(request, pk):
    """Make the run's suggestion a draft and open it in the workbench; a refusal comes back as a message."""
    run = get_run_for_evidence(request, pk)
    _learner_only(request)
    form = DraftFromRunForm(request.POST)
    knockouts = form.cleaned_data["knockouts"] if form.is_valid() else True
    back = reverse("scoring:evidence", args=[run.model_id]) + f"?run={run.pk}"
    try:
        draft = learning.draft_from_run(run=run, by=request.user, knockouts=knockouts)
    except learning.LearningError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    messages.success(
        request,
        _t("%(version)s is a draft from learning run #%(run)s; check its figures, then propose it.")
        % {"version": draft, "run": run.pk},
    )
    return redirect("scoring:version", pk=draft.pk)


# --- the validity report of a version --------------------------------------------------------------------------------


@require_GET
@login_required
@role_required
def validity_report(request, pk):
    """The version's latest validity report (or ?report=), over all outcomes or the recent ones (?window=), with
    its history and, for any other version, the active version's beside it."""
    version = get_version_for_evidence(request, pk)
    reports = version.validity_reports.order_by("-computed_at", "-pk")
    asked = request.GET.get("report")
    if asked is not None:
        if not asked.isdigit():
            raise Http404
        report = get_object_or_404(reports, pk=int(asked))
    else:
        report = reports.first()
    window = "recent" if request.GET.get("window") == "recent" else "all"
    context = {
        "version": version,
        "report": report,
        "window": window,
        "can_learn": learning.can_learn(request.user),
        "recent_days": validity.RECENT_DAYS,
        "min_trust": validity.MIN_TRUST,
        **_history(version),
        **_beside_active(version),
    }
    if report is not None:
        result = report.result if isinstance(report.result, dict) else {}
        context["has_recent"] = bool(result.get("recent"))
        context["calibration_source"] = result.get("calibration_source")
        figures = result.get(window) or (result.get("all") if window == "recent" else None)
        if figures:
            context["figures"] = _validity_figures(figures)
    return render(request, "scoring/validity.html", context)


def _validity_figures(figures):
    deciles = [
        {
            **d,
            "percent": _percent(d["rate"]),
            "low": _percent(d["rate_low"]),
            "high": _percent(d["rate_high"]),
        }
        for d in figures.get("deciles", [])
    ]
    calibration = _calibration(figures.get("calibration", []))
    bands = []
    for key, label in (("red", _("Red")), ("yellow", _("Yellow")), ("green", _("Green"))):
        band = (figures.get("bands") or {}).get(key) or {}
        bands.append(
            {
                "key": key,
                "label": label,
                "n": band.get("n", 0),
                "positives": band.get("positives", 0),
                "predicted_percent": _percent(band.get("predicted")),
                "observed_percent": _percent(band.get("observed")),
                "low": _percent(band.get("observed_low")),
                "high": _percent(band.get("observed_high")),
            }
        )
    calibration_chart = None
    if calibration:
        calibration_chart = svgchart.bar_chart(
            [f"{c['from_percent']:.0f}–{c['to_percent']:.0f} %" for c in calibration],
            [
                (_t("Predicted"), [c["predicted_percent"] for c in calibration], None),
                (_t("Observed"), [c["observed_percent"] for c in calibration], None),
            ],
            label=_t("Predicted against observed conversion per band of predicted probability"),
            value_format=lambda v: f"{formats.number_format(v, 0, use_l10n=True)} %",
            height=220,
        )
    return {
        **figures,
        "rate_percent": _percent(figures.get("rate")),
        "deciles": deciles,
        "lift_chart": _lift_chart(deciles, _t("Lift per decile")) if deciles else None,
        "calibration": calibration,
        "calibration_chart": calibration_chart,
        "bands": bands,
    }


def _history(version):
    points = validity.history(version)
    if not points:
        return {"history": [], "history_chart": None}
    rows = [
        {"at": at, "auc": auc, "low": low, "high": high, "flagged": flagged}
        for at, auc, low, high, flagged in points
    ]
    chart = None
    if len(rows) > 1:
        days = [formats.date_format(timezone.localtime(r["at"]), "SHORT_DATE_FORMAT") for r in rows]
        if len(set(days)) < len(days):  # several a day (computed on demand): the time tells them apart
            days = [formats.date_format(timezone.localtime(r["at"]), "j M H:i") for r in rows]
        chart = svgchart.line_chart(
            days,
            [
                (_t("ROC AUC"), [r["auc"] for r in rows], None),
                (_t("Lower 95 % bound"), [r["low"] for r in rows], None),
                (_t("Upper 95 % bound"), [r["high"] for r in rows], None),
            ],
            label=_t("ROC AUC over time"),
            value_format=lambda v: formats.number_format(v, 2, use_l10n=True),
            height=200,
        )
    rows.reverse()  # the table: newest first
    return {"history": rows, "history_chart": chart}


def _beside_active(version):
    """For a draft (or any version not active): the active version and its latest report, to compare with."""
    if version.status == ScoringVersion.Status.ACTIVE:
        return {}
    active = version.model.versions.filter(status=ScoringVersion.Status.ACTIVE).first()
    if active is None:
        return {}
    latest = ValidityReport.objects.filter(version=active).order_by("-computed_at", "-pk").first()
    return {"active": active, "active_report": latest}


@require_POST
@login_required
@role_required
def compute_validity(request, pk):
    """Ask a worker for a fresh validity report of the version (in-process in the embedded default)."""
    from . import tasks

    version = get_version_for_evidence(request, pk)
    _learner_only(request)
    versions = [version]
    if (
        version.status != ScoringVersion.Status.ACTIVE
    ):  # to compare with: the active version's, if it has none
        active = version.model.versions.filter(status=ScoringVersion.Status.ACTIVE).first()
        if active is not None and not active.validity_reports.exists():
            versions.append(active)
    try:
        for each in versions:
            tasks.compute_validity.delay(each.pk)
    except Exception:  # noqa: BLE001 - a broker away or a failed in-process run: say so, never a 500
        log.warning("could not compute the validity of version %s", version.pk, exc_info=True)
        messages.error(request, _t("The validity report could not be computed now; try again later."))
    else:
        messages.success(
            request,
            _t("The validity report of %(version)s is being computed; it appears here when it is done.")
            % {"version": version},
        )
    return redirect("scoring:validity", pk=version.pk)
