import uuid

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .models import Campaign, Channel, Company, Lead, LifecycleStage, SalesActivity, StageChange, Touchpoint


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
    inlines = [StageChangeInline]
    # Owner and deal value are sales data: only admins change them here (marketing reads them).
    sales_fields = ["owner", "deal_value"]

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
