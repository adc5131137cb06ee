"""Scoring workflows: marking leads for rescoring, the incremental and full rescores, the decay tick."""

import logging

from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from leadcockpit.core.redis import client as redis_client

from .models import DirtyLead, RescoreJob
from .rescoring import RescoreResult, lead_id_bounds, rescore

log = logging.getLogger(__name__)

DIRTY_BATCH = 2_000  # leads claimed and rescored at a time: one rescore statement set, a few seconds at most
CLAIM_TIMEOUT = timezone.timedelta(minutes=5)  # a claim this old belongs to a worker that died
# The decay tick writes a lead when its band, temperature, grade or MQL state changes, or its interest moves by
# this much: the list shows whole points, and an hourly tick would otherwise rewrite nearly every lead.
DECAY_TOLERANCE = 0.05
JOB_CHUNK = 25_000
STALE_JOB_AFTER = timezone.timedelta(minutes=5)
# Set while a rescore_dirty_leads message waits in the queue. Should that message be lost, the flag expires (and
# the sweep enqueues regardless), so a lost message delays rescoring by seconds, never for good.
DIRTY_ENQUEUED = "leadcockpit:scoring:rescore-dirty-enqueued"
DIRTY_ENQUEUED_TTL = 10
RESCORE_GATHER_S = 0.3


def mark_dirty(*, lead_ids):
    """Record that these leads need a new score (durably, in the database) and ask a worker to do it soon."""
    ids = sorted(set(lead_ids))
    if not ids:
        return
    # An upsert that always takes the row's lock: no worker claims the mark before this transaction commits
    # (its rescore would miss the change). A mark a worker holds is flagged as marked again: that worker may
    # have read the lead before the change, so it leaves the mark for the next run.
    table = DirtyLead._meta.db_table
    now = timezone.now()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = ", ".join(["(%s, %s, NULL, %s)"] * len(chunk))
            upsert = f"INSERT INTO {table} (lead_id, marked_at, claimed_at, remarked) VALUES {rows} "  # noqa: S608
            upsert += (  # as ingest's statement marks (capture.actions); the row is locked even where WHERE fails
                f"ON CONFLICT (lead_id) DO UPDATE SET remarked = TRUE "
                f"WHERE {table}.claimed_at IS NOT NULL AND NOT {table}.remarked"
            )
            cursor.execute(upsert, [value for pk in chunk for value in (pk, now, False)])
    transaction.on_commit(_enqueue_dirty)


def rescore_soon():
    """Ask a worker to rescore the dirty leads after the current transaction commits (at once in autocommit),
    for callers that marked them in SQL of their own."""
    transaction.on_commit(_enqueue_dirty)


def _enqueue_dirty(*, force=False):
    """Ask for a rescore_dirty_leads run, unless one is queued and not started yet: that one will find these
    marks too (the task forgets the flag before it claims). Ingest marks leads on every request; one message
    each would cost the web process a publish and the worker a run per event."""
    from . import tasks

    try:
        if not _set_flag() and not force:
            return
        # Starting a moment later lets one run take the marks of every event in that moment, not one each.
        tasks.rescore_dirty_leads.apply_async(countdown=RESCORE_GATHER_S)
    except Exception:  # noqa: BLE001 - Redis may be away; the periodic sweep finds the rows
        log.warning("could not enqueue rescore_dirty_leads; the sweep will pick the leads up", exc_info=True)


def _set_flag():
    """Set the 'message queued' flag unless it is set; True if this call set it (one Redis round trip)."""
    if redis := redis_client():
        return bool(redis.set(DIRTY_ENQUEUED, 1, nx=True, ex=DIRTY_ENQUEUED_TTL))
    return cache.add(DIRTY_ENQUEUED, 1, timeout=DIRTY_ENQUEUED_TTL)


def forget_dirty_enqueued():
    """Called by rescore_dirty_leads as it starts: marks committed from now on need a new message."""
    try:
        if redis := redis_client():
            redis.delete(DIRTY_ENQUEUED)
        else:
            cache.delete(DIRTY_ENQUEUED)
    except Exception:  # noqa: BLE001 - the flag expires by itself
        log.warning("could not clear the rescore flag; it expires in %s s", DIRTY_ENQUEUED_TTL, exc_info=True)


def rescore_dirty(*, batch=DIRTY_BATCH, as_of=None) -> RescoreResult:
    """Claim up to `batch` dirty leads (skipping marks another worker holds), rescore them, forget the marks.

    The claim commits at once and the rescore runs in transactions of its own, so a request marking a lead
    meanwhile never waits for it (ingest did, for the whole rescore). A claimed lead is no other worker's to
    take, even when marked again; such a mark is flagged (remarked) and released for the next run when this one
    ends. If the rescore fails, the claims are given back; if the worker dies, they are taken again after
    CLAIM_TIMEOUT.
    """
    stamp = timezone.now()
    with transaction.atomic():
        ids = list(
            DirtyLead.objects.select_for_update(skip_locked=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stamp - CLAIM_TIMEOUT))
            .order_by("marked_at")
            .values_list("lead_id", flat=True)[:batch]
        )
        DirtyLead.objects.filter(lead_id__in=ids).update(claimed_at=stamp)
    if not ids:
        return RescoreResult()
    try:
        result = rescore(lead_ids=ids, as_of=as_of, recompute=True)
    except BaseException:
        try:  # give the claims back; should that fail too, they are taken again after CLAIM_TIMEOUT
            DirtyLead.objects.filter(lead_id__in=ids, claimed_at=stamp).update(
                claimed_at=None, remarked=False
            )
        except Exception:  # noqa: BLE001 - the rescore's own error is the one to raise
            log.warning("could not give back the claims of a failed rescore", exc_info=True)
        raise
    _forget_claims(ids, stamp)
    return result


def _forget_claims(ids, stamp):
    """Forget the marks this run claimed, but those marked again meanwhile: they are released for the next run.

    The rows are locked in lead order, as ingest and mark_dirty lock them, so the two do not deadlock; a request
    marking one right now holds it for the moment it takes to commit. A marking transaction that locks out of
    order (several mark_dirty calls) can still deadlock with this one: PostgreSQL breaks that, and this tries
    again rather than leave the claims to time out.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                mine = list(
                    DirtyLead.objects.select_for_update()
                    .filter(lead_id__in=ids, claimed_at=stamp)
                    .order_by("lead_id")
                    .values_list("lead_id", "remarked")
                )
                DirtyLead.objects.filter(lead_id__in=[pk for pk, again in mine if not again]).delete()
                DirtyLead.objects.filter(lead_id__in=[pk for pk, again in mine if again]).update(
                    claimed_at=None, remarked=False
                )
            return
        except OperationalError:
            if attempt == 2:
                raise
            log.warning("forgetting rescored marks met a deadlock; trying again", exc_info=True)


def start_full_rescore(*, reason, as_of=None) -> RescoreJob:
    """Create a job that rescores every lead in chunks, and enqueue it after commit."""
    low, high = lead_id_bounds()
    job = RescoreJob.objects.create(
        reason=reason[:200],
        as_of=as_of or timezone.now(),
        first_id=low or 0,
        next_id=low or 0,
        last_id=high if high is not None else -1,
    )
    transaction.on_commit(lambda: _enqueue_job(job.pk))
    return job


def _enqueue_job(job_id):
    from . import tasks

    try:
        tasks.run_rescore_job.delay(job_id)
    except Exception:  # noqa: BLE001 - the sweep re-enqueues queued jobs
        log.warning("could not enqueue rescore job %s; the sweep will", job_id, exc_info=True)


def run_rescore_job(*, job_id, chunk_size=JOB_CHUNK, max_chunks=None):
    """Work through a job chunk by chunk, each in its own transaction holding the job row.

    Safe to run twice or concurrently: a second runner skips the locked row; a killed runner leaves the job at
    its last committed chunk, and running it again resumes there with the same as_of, so the result is the same.
    """
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        with transaction.atomic():
            job = (
                RescoreJob.objects.select_for_update(skip_locked=True)
                .filter(pk=job_id, status__in=[RescoreJob.Status.QUEUED, RescoreJob.Status.RUNNING])
                .first()
            )
            if job is None:
                return
            now = timezone.now()
            if job.next_id > job.last_id:
                job.status, job.finished_at, job.heartbeat_at = RescoreJob.Status.DONE, now, now
                job.save(update_fields=["status", "finished_at", "heartbeat_at"])
                return
            end = job.next_id + chunk_size
            result = rescore(id_range=(job.next_id, end), as_of=job.as_of)
            RescoreJob.objects.filter(pk=job.pk).update(
                longest_chunk_s=Greatest(F("longest_chunk_s"), result.longest_s),
                status=RescoreJob.Status.RUNNING,
                next_id=end,
                scored=F("scored") + result.scored,
                updated=F("updated") + result.updated,
                new_mqls=F("new_mqls") + result.new_mqls,
                heartbeat_at=now,
            )
        chunks += 1


def decay_tick(*, as_of=None, chunk_size=JOB_CHUNK) -> RescoreResult:
    """Bring decayed interest up to date, chunk by chunk, from the leads' accumulators (no touchpoint scan).

    Leads whose interest moved less than DECAY_TOLERANCE, with the same band, temperature, grade and MQL
    state, are not rewritten: their stored score stays exact as of their scored_at.
    """
    as_of = as_of or timezone.now()
    low, high = lead_id_bounds()
    total = RescoreResult()
    if low is None:
        return total
    from .rescoring import active_versions

    versions = active_versions()
    for start in range(low, high + 1, chunk_size):
        total.add(
            rescore(
                id_range=(start, start + chunk_size),
                as_of=as_of,
                versions=versions,
                interest_tolerance=DECAY_TOLERANCE,
            )
        )
    return total


def sweep():
    """Re-enqueue what a lost message left behind: dirty leads, queued jobs, jobs whose runner went silent."""
    if DirtyLead.objects.exists():
        _enqueue_dirty(force=True)  # whatever the flag says: its message may be the one that was lost
    stale = timezone.now() - STALE_JOB_AFTER
    for job_id in RescoreJob.objects.filter(status=RescoreJob.Status.QUEUED).values_list("pk", flat=True):
        _enqueue_job(job_id)
    for job_id in RescoreJob.objects.filter(
        status=RescoreJob.Status.RUNNING, heartbeat_at__lt=stale
    ).values_list("pk", flat=True):
        _enqueue_job(job_id)


class WorkflowError(Exception):
    """A version step that is not allowed now; the message says why, in the user's language."""


def side_of(user):
    """Which side of the joint approval a user signs for: marketing, sales, or None."""
    from leadcockpit.accounts.roles import Role

    from .models import Approval

    role = user.role
    if role == Role.MARKETING:
        return Approval.Side.MARKETING
    if role == Role.SALES_MANAGER:  # sales signs through its managers, not each rep
        return Approval.Side.SALES
    return None


@transaction.atomic
def new_draft(*, model, by, from_version=None, note=""):
    """A new draft version, copying the criteria and thresholds of `from_version` (or the newest version)."""
    from .models import ScoringVersion

    source = from_version or model.versions.order_by("-number").first()
    number = (model.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    draft = ScoringVersion.objects.create(model=model, number=number, created_by=by, note=note)
    if source is not None:
        for name in THRESHOLD_FIELDS:
            setattr(draft, name, getattr(source, name))
        draft.save()
        criteria = list(source.criteria.all())
        for criterion in criteria:
            criterion.pk = None
            criterion.version = draft
        draft.criteria.model.objects.bulk_create(criteria)
    return draft


THRESHOLD_FIELDS = [
    "mql_threshold",
    "min_fit_for_mql",
    "yellow_from",
    "green_from",
    "warm_from",
    "hot_from",
    "fit_a_from",
    "fit_b_from",
    "fit_c_from",
    "interest_1_from",
    "interest_2_from",
    "interest_3_from",
]


def propose(*, version, by):
    """Freeze a draft for sign-off. Conditional update: two clicks cannot propose it twice."""
    from django.utils.translation import gettext as _

    from .models import ScoringVersion

    if not version.criteria.exists():
        raise WorkflowError(_("A version needs at least one criterion before it can be proposed."))
    changed = ScoringVersion.objects.filter(pk=version.pk, status=ScoringVersion.Status.DRAFT).update(
        status=ScoringVersion.Status.PROPOSED, proposed_at=timezone.now()
    )
    if not changed:
        raise WorkflowError(_("Only a draft can be proposed."))
    version.refresh_from_db()
    return version


@transaction.atomic
def approve(*, version, by, preview=None):
    """Record the user's side's approval, with the preview they saw; with both sides in, activate the version
    and rescore every lead."""
    from django.db import IntegrityError
    from django.utils.translation import gettext as _

    from .models import Approval, ScoringVersion

    version = ScoringVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != ScoringVersion.Status.PROPOSED:
        raise WorkflowError(_("Only a proposed version can be approved."))
    side = side_of(by)
    if side is None:
        raise WorkflowError(_("Only marketing and sales users approve scoring models."))
    if version.approvals.filter(user=by).exists():
        raise WorkflowError(_("You have approved this version already; the other side must approve it."))
    try:
        with transaction.atomic():
            Approval.objects.create(version=version, side=side, user=by, preview=preview)
    except IntegrityError:
        raise WorkflowError(_("Your side has approved this version already.")) from None
    if version.approvals.count() == 2:
        activate(
            version=version, reason=_("%(version)s activated after joint approval") % {"version": version}
        )
    return version


@transaction.atomic
def reject(*, version, by, text):
    """Send a proposed version back to draft with the reason as a comment; approvals given so far lapse."""
    from django.utils.translation import gettext as _

    from .models import ScoringVersion, VersionComment

    text = (text or "").strip()
    if side_of(by) is None:
        raise WorkflowError(_("Only marketing and sales users reject a proposal."))
    if not text:
        raise WorkflowError(_("Say why you reject the proposal."))
    # Conditional update: a version activated by the second approval meanwhile is not sent back.
    changed = ScoringVersion.objects.filter(pk=version.pk, status=ScoringVersion.Status.PROPOSED).update(
        status=ScoringVersion.Status.DRAFT, proposed_at=None
    )
    if not changed:
        raise WorkflowError(_("Only a proposed version can be rejected."))
    version.approvals.all().delete()
    VersionComment.objects.create(version=version, author=by, kind=VersionComment.Kind.REJECTION, text=text)
    version.refresh_from_db()
    return version


@transaction.atomic
def activate(*, version, reason):
    """Retire the model's active version, activate this one, and start a full rescore."""
    from .models import ScoringVersion

    now = timezone.now()
    ScoringVersion.objects.filter(model=version.model, status=ScoringVersion.Status.ACTIVE).exclude(
        pk=version.pk
    ).update(status=ScoringVersion.Status.RETIRED, retired_at=now)
    ScoringVersion.objects.filter(pk=version.pk).update(
        status=ScoringVersion.Status.ACTIVE, activated_at=now, retired_at=None
    )
    version.refresh_from_db()
    return start_full_rescore(reason=reason)


@transaction.atomic
def draft_from(*, version, by, note=""):
    """A new draft copied from `version`, unless the model has a draft already (one draft at a time)."""
    from django.utils.translation import gettext as _

    from .models import ScoringModel, ScoringVersion

    model = ScoringModel.objects.select_for_update().get(pk=version.model_id)  # two clicks make one draft
    existing = model.versions.filter(status=ScoringVersion.Status.DRAFT).first()
    if existing is not None:
        raise WorkflowError(
            _("%(model)s has a draft already (v%(number)s); change that one or let it be proposed first.")
            % {"model": model, "number": existing.number}
        )
    return new_draft(model=model, by=by, from_version=version, note=note)


def rollback(*, version, by):
    """Going back to a retired version is a new draft copied from it, which is proposed and approved like any
    other: the evidence and both sides' consent are about today's leads, not those of its first approval."""
    from django.utils.translation import gettext as _

    from .models import ScoringVersion

    if version.status != ScoringVersion.Status.RETIRED:
        raise WorkflowError(_("Only a retired version can be rolled back to."))
    return draft_from(version=version, by=by, note=_("Rollback to v%(number)s") % {"number": version.number})


def explain(*, lead, as_of=None):
    """The ledger of one lead: its active version, the evaluation as of now, what is missing to MQL, its history."""
    from .evaluator import choose_version, evaluate
    from .models import ScoringVersion

    versions = list(
        ScoringVersion.objects.filter(status=ScoringVersion.Status.ACTIVE)
        .select_related("model")
        .prefetch_related("criteria")
        .order_by("model__priority", "model_id")
    )
    version = choose_version(lead, versions)
    evaluation = missing = None
    if version is not None:
        evaluation = evaluate(
            lead, version, as_of=as_of or timezone.now(), criteria=list(version.criteria.all())
        )
        missing = evaluation.missing_to_mql(version)
    history = lead.score_changes.select_related("version__model").order_by("-at", "-pk")[:10]
    return {
        "lead": lead,
        "version": version,
        "evaluation": evaluation,
        "missing": missing,
        "history": history,
    }
