"""Capture: the sources that send activity (websites, email tools) and the keys they authenticate with."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def for_secret(self, raw):
        """The active key a presented secret belongs to, or None. Keys look like lc_<prefix>_<secret>."""
        if not isinstance(raw, str) or len(raw) > 200 or raw.count("_") < 2:
            return None
        _lc, prefix, _rest = raw.split("_", 2)
        key = self.active().filter(prefix=prefix).first()
        if key is None or not secrets.compare_digest(key.key_hash, hash_secret(raw)):
            return None
        return key


class ApiKey(models.Model):
    """A source's key for the ingest API: only its hash is stored; revoking it refuses it at once."""

    name = models.CharField(
        _("source"), max_length=100, help_text=_("E.g. the website, or the newsletter tool.")
    )
    prefix = models.CharField(_("prefix"), max_length=12, unique=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, editable=False)
    allowed_origins = models.JSONField(
        _("allowed origins"),
        default=list,
        blank=True,
        help_text=_(
            "Origins a browser may send from, e.g. https://www.example.com; empty: server-to-server only."
        ),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self):
        return f"{self.name} (lc_{self.prefix}_…)"

    @classmethod
    def issue(cls, *, name, by=None, allowed_origins=()):
        """A new key; returns (key, secret). The secret is shown once and never stored."""
        prefix = secrets.token_hex(4)
        secret = f"lc_{prefix}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            name=name,
            prefix=prefix,
            key_hash=hash_secret(secret),
            allowed_origins=list(allowed_origins),
            created_by=by,
        )
        return key, secret

    def revoke(self):
        ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
