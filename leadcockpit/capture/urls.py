from django.urls import path

from . import views

app_name = "capture"
urlpatterns = [
    path("t/o/<str:token>.gif", views.email_open, name="email_open"),
    path("t/c/<str:token>/", views.email_click, name="email_click"),
    path("capture/demo/", views.snippet_demo, name="snippet_demo"),
]
