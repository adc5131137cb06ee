"""The attribution and cost panels' URLs, included into the insights namespace by urls.py."""

from django.urls import path

from . import views_attribution as views

urlpatterns = [
    path("attribution/", views.attribution, name="attribution"),
    path("attribution/<slug:table>.csv", views.attribution_csv, name="attribution_csv"),
    path("costs/", views.costs, name="costs"),
    path("costs/<slug:table>.csv", views.costs_csv, name="costs_csv"),
]
