from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from .middleware import MAX_ORIGIN_LENGTH
from .models import ApiKey, ImportJob, ImportPreset

DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_origin(value):
    """The origin as a browser sends it in its Origin header (scheme://host[:port], lower case, no default
    port), or a ValidationError that says what is wrong with it. Keys compare origins as exact strings."""
    shown = {"value": value}
    if len(value) > MAX_ORIGIN_LENGTH:
        raise ValidationError(
            _("“%(value)s” is longer than %(limit)s characters."),
            params={**shown, "limit": MAX_ORIGIN_LENGTH},
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(_("“%(value)s” is not an origin."), params=shown) from None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.netloc:
        raise ValidationError(
            _("“%(value)s” must start with https:// or http://, e.g. https://www.example.com."), params=shown
        )
    if parts.path or parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValidationError(
            _(
                "“%(value)s” has a path: give only the scheme and host (and port), e.g. https://www.example.com."
            ),
            params=shown,
        )
    if parts.username is not None or not parts.hostname:
        raise ValidationError(
            _("“%(value)s” must name a host, without a user name, e.g. https://www.example.com."),
            params=shown,
        )
    scheme = parts.scheme.lower()
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"  # IPv6 keeps its brackets
    origin = f"{scheme}://{host}" + (f":{port}" if port not in (None, DEFAULT_PORTS[scheme]) else "")
    try:
        URLValidator(schemes=list(DEFAULT_PORTS))(origin)
    except ValidationError:
        raise ValidationError(_("“%(value)s” does not name a valid host."), params=shown) from None
    return origin


class ApiKeyForm(forms.ModelForm):
    """Allowed origins as one per line, each checked and written the way browsers send it."""

    allowed_origins = forms.CharField(
        label=_("allowed origins"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One per line, e.g. https://www.example.com (scheme and host, and a port if not the usual one; "
            "no path). Browsers may send from these; leave empty for server-to-server use only."
        ),
    )

    class Meta:
        model = ApiKey
        fields = ["name", "allowed_origins"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["allowed_origins"] = "\n".join(self.instance.allowed_origins or [])

    def clean_allowed_origins(self):
        origins, errors = [], []
        for line in self.cleaned_data["allowed_origins"].splitlines():
            if not line.strip():
                continue
            try:
                origin = canonical_origin(line.strip())
            except ValidationError as exc:
                errors.append(exc)
                continue
            if origin not in origins:
                origins.append(origin)
        if errors:
            raise ValidationError(errors)
        return origins


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Admins create a key per source; its secret is shown once, after saving, and never again."""

    form = ApiKeyForm
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "allowed_origins"]
    actions = ["rotate", "revoke"]

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

    @admin.action(description=_("Rotate the selected keys (a new secret; the old one stops working)"))
    def rotate(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            with transaction.atomic():
                # Locked and re-read, so a key revoked (or rotated) meanwhile is not rotated a second time.
                old = ApiKey.objects.select_for_update().filter(pk=pk).active().first()
                if old is None:
                    self.message_user(request, _("A revoked key cannot be rotated."), messages.WARNING)
                    continue
                new, secret = ApiKey.issue(
                    name=old.name, by=request.user, allowed_origins=old.allowed_origins
                )
                old.revoke()
            self.message_user(
                request,
                _(
                    "The new key for %(name)s, shown only now: %(secret)s. The old key lc_%(old)s_… no longer works."
                )
                % {"name": new.name, "secret": secret, "old": old.prefix},
                messages.SUCCESS,
            )

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request, queryset):
        for key in queryset:
            key.revoke()
        self.message_user(request, _("Revoked."), messages.SUCCESS)


@admin.register(ImportPreset)
class ImportPresetAdmin(admin.ModelAdmin):
    """Saved column mappings; the mapping is edited as JSON here and made on the import page."""

    list_display = ["name", "kind", "created_by", "created_at"]
    list_filter = ["kind"]
    readonly_fields = ["created_by", "created_at"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Imports are read here; they are made and run on the import page."""

    list_display = [
        "filename",
        "kind",
        "status",
        "total_rows",
        "created",
        "updated",
        "rejected",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    fields = list_display[:-1] + ["unchanged", "next_row", "error", "created_by", "created_at", "finished_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
