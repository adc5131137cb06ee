import uuid

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from leadcockpit.accounts.roles import Role, role_of

from .actions import MergeRefused, merge_into_oldest
from .models import (
    Campaign,
    Channel,
    Company,
    Lead,
    LeadMerge,
    LifecycleStage,
    SalesActivity,
    StageChange,
    Touchpoint,
)

MERGE_AT_MOST = 20  # leads in one admin merge: a person checks each row of the confirmation


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_LIMIT rows: the admin's page links stay cheap on tables of ten million rows."""

    COUNT_LIMIT = 10_000

    @cached_property
    def count(self):
        return self.object_list.order_by()[: self.COUNT_LIMIT].count()


class ScopedAdmin(admin.ModelAdmin):
    """Admin lists and lead pickers start from the user's scope, like every other page."""

    show_full_result_count = False
    list_per_page = 50
    paginator = CappedCountPaginator

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "lead":
            kwargs["queryset"] = Lead.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["code", "name_en", "name_de", "is_paid", "position"]
    list_editable = ["position"]


@admin.register(LifecycleStage)
class LifecycleStageAdmin(admin.ModelAdmin):
    list_display = ["code", "name_en", "name_de", "phase", "position"]
    list_filter = ["phase"]
    list_editable = ["position"]


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "domain", "industry", "employee_count", "annual_revenue", "country", "region"]
    list_filter = ["industry", "country"]
    search_fields = ["^name", "^domain"]
    show_full_result_count = False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "utm_campaign", "cost", "starts_on", "ends_on"]
    list_filter = ["channel"]
    search_fields = ["name", "utm_campaign"]
    date_hierarchy = "starts_on"


class StageChangeInline(admin.TabularInline):
    model = StageChange
    extra = 0
    can_delete = False
    fields = ["at", "from_stage", "to_stage", "actor", "system_actor", "reason"]
    readonly_fields = fields
    ordering = ["-at"]

    def has_add_permission(self, request, obj=None):
        return False  # the lifecycle trail is written by the cockpit, not edited by hand


class LeadMergeInline(admin.TabularInline):
    model = LeadMerge
    fk_name = "lead"
    extra = 0
    can_delete = False
    fields = ["at", "merged_lead_id", "email", "external_id", "actor", "system_actor", "reason"]
    readonly_fields = fields
    ordering = ["-at"]
    verbose_name_plural = _("merged into this lead")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Lead)
class LeadAdmin(ScopedAdmin):
    list_display = ["email", "full_name", "company", "stage", "band", "score", "grade", "owner", "created_at"]
    list_filter = ["stage", "band", "temperature", "source", "first_channel", "contact_role"]
    list_select_related = ["company", "stage", "owner"]
    search_fields = ["^email", "^last_name", "=external_id"]
    ordering = ["-created_at", "-id"]
    raw_id_fields = ["company", "campaign", "owner"]
    readonly_fields = [
        "stage",
        "fit_score",
        "interest_score",
        "score",
        "band",
        "temperature",
        "grade",
        "scored_at",
        "created_at",
        "updated_at",
        "stage_changed_at",
        "mql_at",
        "handed_over_at",
        "sal_at",
        "sql_at",
        "closed_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "email",
                    "external_id",
                    "first_name",
                    "last_name",
                    "phone",
                    "job_title",
                    "contact_role",
                    "company",
                ]
            },
        ),
        (_("BANT"), {"fields": ["budget", "authority", "need", "timeframe"]}),
        (_("Origin"), {"fields": ["source", "first_channel", "campaign"]}),
        (_("Consent"), {"fields": ["tracking_consent", "marketing_consent", "consent_basis", "consent_at"]}),
        (
            _("Lifecycle"),
            {
                "fields": [
                    "stage",
                    "owner",
                    "deal_value",
                    "created_at",
                    "updated_at",
                    "stage_changed_at",
                    "mql_at",
                    "handed_over_at",
                    "sal_at",
                    "sql_at",
                    "closed_at",
                ]
            },
        ),
        (
            _("Score"),
            {"fields": ["fit_score", "interest_score", "score", "band", "temperature", "grade", "scored_at"]},
        ),
    ]
    inlines = [StageChangeInline, LeadMergeInline]
    actions = ["merge_selected"]
    # Owner and deal value are sales data: only admins change them here (marketing reads them).
    sales_fields = ["owner", "deal_value"]

    def has_merge_permission(self, request):
        """Merging deletes leads and moves sales history: admins only (marketing may edit leads, not merge)."""
        return role_of(request.user) == Role.ADMIN

    @admin.action(description=_("Merge selected leads into the oldest"), permissions=["merge"])
    def merge_selected(self, request, queryset):
        """First a confirmation page listing the leads (the oldest kept), then, on its POST, the merge."""
        leads = list(
            queryset.select_related("stage", "owner").order_by("created_at", "pk")[: MERGE_AT_MOST + 1]
        )
        if len(leads) < 2:
            self.message_user(request, _("Select at least two leads to merge."), messages.WARNING)
            return None
        if len(leads) > MERGE_AT_MOST:
            self.message_user(
                request,
                _("Merge at most %(n)d leads at a time.") % {"n": MERGE_AT_MOST},
                messages.ERROR,
            )
            return None
        if request.POST.get("post") == "yes":
            reason = request.POST.get("reason", "").strip()[:500] or "merged in the admin"
            try:
                merges = merge_into_oldest(
                    lead_ids=[lead.pk for lead in leads], by=request.user, reason=reason
                )
            except MergeRefused as exc:
                self.message_user(
                    request, _("Nothing was merged: %(why)s") % {"why": exc.message}, messages.ERROR
                )
                return None
            self.message_user(
                request,
                ngettext(
                    "%(count)d lead was merged into %(lead)s.",
                    "%(count)d leads were merged into %(lead)s.",
                    len(merges),
                )
                % {"count": len(merges), "lead": leads[0].display_name},
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Merge leads"),
            "opts": self.model._meta,
            "leads": leads,
            "keep": leads[0],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/leads/lead/merge_confirmation.html", context)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += self.sales_fields
        return fields

    @admin.display(description=_("name"), ordering="last_name")
    def full_name(self, obj):
        return obj.full_name


@admin.register(Touchpoint)
class TouchpointAdmin(ScopedAdmin):
    list_display = ["occurred_at", "kind", "lead", "visitor_id", "url", "channel", "campaign"]
    list_filter = ["kind", "channel"]
    list_select_related = ["lead", "channel", "campaign"]
    search_fields = ["=visitor_id", "^lead__email"]
    autocomplete_fields = ["lead"]
    raw_id_fields = ["campaign"]
    readonly_fields = ["client_event_id", "received_at"]
    ordering = ["-id"]

    def get_search_results(self, request, queryset, search_term):
        """A search term that is a UUID finds the event by its id through the unique index."""
        try:
            event_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(client_event_id=event_id), False


@admin.register(SalesActivity)
class SalesActivityAdmin(ScopedAdmin):
    list_display = ["occurred_at", "kind", "outcome", "lead", "rep", "next_follow_up"]
    list_filter = ["kind", "outcome"]
    list_select_related = ["lead", "rep"]
    search_fields = ["^lead__email"]
    autocomplete_fields = ["lead"]
    raw_id_fields = ["rep"]
    ordering = ["-id"]


@admin.register(StageChange)
class StageChangeAdmin(ScopedAdmin):
    list_display = ["at", "lead", "from_stage", "to_stage", "actor_display", "reason"]
    list_filter = ["to_stage", "system_actor"]
    list_select_related = ["lead", "from_stage", "to_stage", "actor"]
    search_fields = ["^lead__email"]
    ordering = ["-id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("by"))
    def actor_display(self, obj):
        return obj.actor_display


@admin.register(LeadMerge)
class LeadMergeAdmin(admin.ModelAdmin):
    """The record of merges, read-only: made by the merge action, the ingest and the merge_duplicates command."""

    list_display = ["at", "lead", "merged_lead_id", "email", "external_id", "actor_display", "reason"]
    list_filter = ["system_actor"]
    list_select_related = ["lead", "actor"]
    search_fields = ["=merged_lead_id", "^email", "=external_id", "^lead__email"]
    ordering = ["-at", "-id"]
    show_full_result_count = False
    paginator = CappedCountPaginator

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("by"))
    def actor_display(self, obj):
        return obj.actor_display
