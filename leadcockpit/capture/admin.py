from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from .models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Admins create a key per source; its secret is shown once, after saving, and never again."""

    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "allowed_origins"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "allowed_origins"])
            return
        key, secret = ApiKey.issue(name=obj.name, by=request.user, allowed_origins=obj.allowed_origins)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        self.message_user(
            request,
            _("The key for %(name)s, shown only now: %(secret)s") % {"name": key.name, "secret": secret},
        )

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request, queryset):
        for key in queryset:
            key.revoke()
        self.message_user(request, _("Revoked."), messages.SUCCESS)
