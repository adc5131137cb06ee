import uuid
from datetime import timedelta

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from leadcockpit.accounts.models import Team, User
from leadcockpit.leads.models import Campaign, Company, Lead, SalesActivity, StageChange, Touchpoint


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"Team {n}")
    kind = Team.Kind.INSIDE


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))
            if extracted == "admin":
                self.is_staff = self.is_superuser = True
            elif extracted == "marketing":
                self.is_staff = True
        self.save()


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Firma {n} GmbH")
    domain = factory.Sequence(lambda n: f"firma{n}.example")
    industry = "manufacturing"
    employee_count = 250
    country = "DE"


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    channel_id = "webinar"
    cost = 1000
    starts_on = factory.LazyFunction(lambda: timezone.now().date() - timedelta(days=30))


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    email = factory.Sequence(lambda n: f"lead{n}@firma.example")
    first_name = factory.Faker("first_name")
    last_name = factory.Sequence(lambda n: f"Lastname{n:05d}")
    company = factory.SubFactory(CompanyFactory)
    stage_id = "mgl"


class TouchpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Touchpoint

    lead = factory.SubFactory(LeadFactory)
    visitor_id = factory.Sequence(lambda n: f"v{n}")
    kind = Touchpoint.Kind.PAGE_VIEW
    url = "https://www.solvaro.example/pricing"
    occurred_at = factory.LazyFunction(timezone.now)
    received_at = factory.LazyFunction(timezone.now)
    client_event_id = factory.LazyFunction(uuid.uuid4)


class SalesActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SalesActivity

    lead = factory.SubFactory(LeadFactory)
    kind = SalesActivity.Kind.CALL
    outcome = SalesActivity.Outcome.REACHED
    occurred_at = factory.LazyFunction(timezone.now)


class StageChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StageChange

    lead = factory.SubFactory(LeadFactory)
    to_stage_id = "mql"
    system_actor = "scoring"
    at = factory.LazyFunction(timezone.now)
