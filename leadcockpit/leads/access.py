"""The one way views reach a lead: from the user's scope, or 404."""

from django.shortcuts import get_object_or_404

from .models import Lead


def get_lead_for_user(request, pk, queryset=None):
    """The lead `pk` if the requesting user may see it; otherwise 404 (never 403, which would leak existence)."""
    base = queryset if queryset is not None else Lead.objects.all()
    return get_object_or_404(base.visible_to(request.user), pk=pk)
