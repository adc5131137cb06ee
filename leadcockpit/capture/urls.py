from django.urls import path

from . import views

app_name = "capture"
urlpatterns = [
    path("t/o/<str:token>.gif", views.email_open, name="email_open"),
    path("t/c/<str:token>/", views.email_click, name="email_click"),
    path("capture/demo/", views.snippet_demo, name="snippet_demo"),
    path("imports/", views.import_list, name="imports"),
    path("imports/<int:pk>/", views.import_detail, name="import_detail"),
    path("imports/<int:pk>/discard/", views.import_discard, name="import_discard"),
    path("imports/<int:pk>/progress/", views.import_progress, name="import_progress"),
    path("imports/<int:pk>/rejected.csv", views.import_report, name="import_report"),
]
