from django.contrib import admin

from .models import Handover, Notification, RepAvailability, RoutingRule, TeamRouting


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "team", "active"]
    list_editable = ["position", "active"]
    fields = ["name", "position", "team", "conditions", "grades", "product_interest", "active"]


@admin.register(TeamRouting)
class TeamRoutingAdmin(admin.ModelAdmin):
    list_display = ["team", "strategy", "sla_hours", "business_hours", "reassign_on_breach"]
    fields = ["team", "strategy", "sla_hours", "business_hours", "remind_before_hours", "reassign_on_breach"]


@admin.register(RepAvailability)
class RepAvailabilityAdmin(admin.ModelAdmin):
    list_display = ["rep", "capacity", "absent_from", "absent_until"]
    raw_id_fields = ["rep"]


@admin.register(Handover)
class HandoverAdmin(admin.ModelAdmin):
    """Read-only: handovers change only through routing, accept and reject."""

    list_display = ["lead", "team", "rep", "status", "due_at", "reject_reason"]
    list_filter = ["status", "team", "reject_reason"]
    list_select_related = ["lead", "team", "rep"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "handover", "created_at", "emailed_at", "read_at"]
    list_filter = ["kind"]
    raw_id_fields = ["user", "handover"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(handover__in=Handover.objects.visible_to(request.user))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
