from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from leadcockpit.leads.admin import LeadAdmin
from leadcockpit.leads.models import Lead

from . import actions
from .models import (
    Approval,
    Criterion,
    DirtyLead,
    Preview,
    RescoreJob,
    ScoreChange,
    ScoringModel,
    ScoringVersion,
    VersionComment,
)


class VersionInline(admin.TabularInline):
    model = ScoringVersion
    extra = 0
    fields = ["number", "status", "note", "activated_at", "retired_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # new versions come from the "new draft" action, copying the last one


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    list_display = ["name", "priority", "active_version"]
    fields = ["name", "description", "priority", "rule", "review_after_days"]
    inlines = [VersionInline]
    actions = ["make_draft"]

    @admin.display(description=_("active version"))
    def active_version(self, obj):
        version = obj.versions.filter(status=ScoringVersion.Status.ACTIVE).first()
        return version.number if version else "—"

    @admin.action(description=_("Start a new draft version"))
    def make_draft(self, request, queryset):
        for model in queryset:
            newest = model.versions.order_by("-number").first()
            try:
                if newest is None:
                    draft = actions.new_draft(model=model, by=request.user)
                else:
                    draft = actions.draft_from(version=newest, by=request.user)
            except actions.WorkflowError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, _("Draft %(version)s created.") % {"version": draft})


class CriterionInline(admin.StackedInline):
    model = Criterion
    extra = 0
    fields = [
        ("kind", "position", "label"),
        ("field", "operator", "value"),
        ("touchpoint_kinds", "url_contains", "channel", "search_contains"),
        ("points", "cap", "lookback_days", "half_life_days"),
        "reason",
    ]

    def _editable(self, obj):
        return obj is None or obj.is_editable

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    fields = ["side", "user", "at", "preview"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # approvals come from the approve action, one per side and person


@admin.register(ScoringVersion)
class ScoringVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model", "number", "status", "activated_at"]
    list_filter = ["model", "status"]
    readonly_fields = [
        "model",
        "number",
        "status",
        "created_by",
        "created_at",
        "proposed_at",
        "activated_at",
        "retired_at",
    ]
    fieldsets = [
        (None, {"fields": ["model", "number", "status", "note"]}),
        (
            _("Thresholds"),
            {
                "fields": [
                    ("mql_threshold", "min_fit_for_mql"),
                    ("yellow_from", "green_from"),
                    ("warm_from", "hot_from"),
                    ("fit_a_from", "fit_b_from", "fit_c_from"),
                    ("interest_1_from", "interest_2_from", "interest_3_from"),
                ]
            },
        ),
        (_("History"), {"fields": ["created_by", "created_at", "proposed_at", "activated_at", "retired_at"]}),
    ]
    inlines = [CriterionInline, ApprovalInline]
    actions = ["propose_versions", "approve_versions", "rollback_to_versions"]

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return False  # a proposed, active or retired version is immutable
        return super().has_change_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def _run(self, request, queryset, step, done):
        for version in queryset:
            try:
                step(version=version, by=request.user)
                self.message_user(request, done % {"version": version})
            except actions.WorkflowError as exc:
                self.message_user(request, f"{version}: {exc}", messages.ERROR)

    @admin.action(description=_("Propose for approval"))
    def propose_versions(self, request, queryset):
        self._run(request, queryset, actions.propose, _("%(version)s proposed."))

    @admin.action(description=_("Approve for my side"))
    def approve_versions(self, request, queryset):
        self._run(request, queryset, actions.approve, _("%(version)s approved."))

    @admin.action(description=_("Roll back to this version (as a new draft)"))
    def rollback_to_versions(self, request, queryset):
        self._run(request, queryset, actions.rollback, _("A draft copied from %(version)s was created."))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the workbench's actions; the admin shows them, never edits them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VersionComment)
class VersionCommentAdmin(ReadOnlyAdmin):
    list_display = ["at", "version", "author", "kind", "text"]
    list_filter = ["kind"]
    list_select_related = ["version__model", "author"]
    ordering = ["-at"]


@admin.register(Preview)
class PreviewAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "version", "status", "as_of", "seconds", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["version__model"]
    exclude = ["result"]  # the figures are read on the workbench; the JSON is long
    readonly_fields = [
        "version",
        "fingerprint",
        "status",
        "as_of",
        "error",
        "seconds",
        "created_at",
        "finished_at",
    ]
    ordering = ["-created_at"]


@admin.register(ScoreChange)
class ScoreChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "lead", "version", "score", "band", "temperature", "grade", "is_mql"]
    list_filter = ["band", "temperature", "is_mql", "version"]
    list_select_related = ["lead", "version__model"]
    raw_id_fields = ["lead"]
    search_fields = ["^lead__email"]
    show_full_result_count = False
    ordering = ["-id"]

    def get_queryset(self, request):
        from leadcockpit.leads.models import Lead

        return (
            super().get_queryset(request).filter(lead__in=Lead.objects.visible_to(request.user).values("pk"))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RescoreJob)
class RescoreJobAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "reason",
        "status",
        "percent",
        "scored",
        "updated",
        "new_mqls",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in RescoreJob._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(DirtyLead)
class DirtyLeadAdmin(admin.ModelAdmin):
    list_display = ["lead", "marked_at"]
    raw_id_fields = ["lead"]
    ordering = ["marked_at"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


# The lead admin shows the explanation ledger too. Registered from here, so that leads knows nothing of scoring.
admin.site.unregister(Lead)


@admin.register(Lead)
class ScoredLeadAdmin(LeadAdmin):
    fieldsets = [
        *LeadAdmin.fieldsets[:-1],
        (LeadAdmin.fieldsets[-1][0], {"fields": [*LeadAdmin.fieldsets[-1][1]["fields"], "score_ledger"]}),
    ]
    readonly_fields = [*LeadAdmin.readonly_fields, "score_ledger"]

    @admin.display(description=_("why this score"))
    def score_ledger(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return render_to_string("scoring/lead_score.html#score-ledger", actions.explain(lead=obj))
