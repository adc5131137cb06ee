from django.urls import path

from . import views

app_name = "leads"
urlpatterns = [
    path("", views.lead_list, name="list"),
    path("export.csv", views.lead_export, name="export"),
    path("activities.csv", views.activity_export, name="export_activities"),
    path("<int:pk>/", views.lead_detail, name="detail"),
]
