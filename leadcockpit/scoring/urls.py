from django.urls import path

from . import views

app_name = "scoring"
urlpatterns = [
    path("leads/<int:pk>/score/", views.lead_score, name="lead_score"),
]
