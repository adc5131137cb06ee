from datetime import datetime

import django_filters
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from leadcockpit.accounts.models import User
from leadcockpit.accounts.roles import Role
from leadcockpit.lib.keyset import Sort

from .models import Campaign, Channel, Company, Industry, Lead, LifecycleStage, normalise_email

# The only orders the lead list accepts; anything else falls back to the default.
SORTS = {
    "-created": (Sort("created_at", True, datetime), _("Newest first")),
    "created": (Sort("created_at", False, datetime), _("Oldest first")),
    "-score": (Sort("score", True, float), _("Highest score")),
    "score": (Sort("score", False, float), _("Lowest score")),
    "name": (Sort("last_name", False, str), _("Last name A–Z")),
}
DEFAULT_SORT = "-created"
GRADES = [(f"{letter}{number}", f"{letter}{number}") for letter in "ABCD" for number in "1234"]
# A search term matching more companies than this is too broad to list them all; name and email matches still count.
SEARCH_MAX_COMPANIES = 1000


def visible_owners(user):
    """The users whose leads this user may filter by."""
    role = user.role
    if role == Role.SALES_REP or (role == Role.SALES_MANAGER and not user.team_id):
        return User.objects.filter(pk=user.pk)
    qs = User.objects.filter(groups__name__in=[Role.SALES_REP, Role.SALES_MANAGER], is_active=True)
    if role == Role.SALES_MANAGER:
        qs = qs.filter(Q(team_id=user.team_id) | Q(pk=user.pk))
    return qs.distinct().order_by("first_name", "last_name")


class LeadFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label=_("Search"), max_length=100)
    stage = django_filters.ModelChoiceFilter(queryset=LifecycleStage.objects.all(), label=_("Stage"))
    band = django_filters.ChoiceFilter(choices=Lead.Band.choices, label=_("Traffic light"))
    grade = django_filters.ChoiceFilter(choices=GRADES, label=_("Grade"))
    owner = django_filters.ModelChoiceFilter(queryset=User.objects.none(), label=_("Owner"))
    industry = django_filters.ChoiceFilter(
        field_name="company__industry", choices=Industry.choices, label=_("Industry")
    )
    country = django_filters.ChoiceFilter(
        field_name="company__country", choices=countries, label=_("Country")
    )
    source = django_filters.ChoiceFilter(choices=Lead.Source.choices, label=_("Source"))
    channel = django_filters.ModelChoiceFilter(
        field_name="first_channel", queryset=Channel.objects.all(), label=_("First channel")
    )
    campaign = django_filters.ModelChoiceFilter(queryset=Campaign.objects.all(), label=_("Campaign"))

    class Meta:
        model = Lead
        fields = []

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["owner"].queryset = visible_owners(user)
        for name, filter_ in self.filters.items():
            if name != "q":
                filter_.extra["empty_label"] = _("All")

    def search(self, queryset, name, value):
        """Email prefix, or first/last name prefix, or company name prefix, or the exact external id (each served
        by an index)."""
        term = value.strip()
        if not term:
            return queryset
        if "@" in term:
            return queryset.filter(email__startswith=normalise_email(term))
        # Companies first, only those holding leads in this user's scope: the ids then join the other prefix
        # matches in one OR that PostgreSQL answers from indexes (a join inside the OR would scan every lead).
        companies = list(
            Company.objects.filter(name__istartswith=term)
            .filter(Exists(queryset.filter(company=OuterRef("pk")).order_by()))
            .values_list("pk", flat=True)[:SEARCH_MAX_COMPANIES]
        )
        return queryset.filter(
            Q(last_name__istartswith=term)
            | Q(first_name__istartswith=term)
            | Q(email__startswith=term.lower())
            | Q(company_id__in=companies)
            | Q(external_id=term)
        )
