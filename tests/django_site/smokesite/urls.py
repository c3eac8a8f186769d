from django.contrib.auth.views import LoginView
from django.urls import path
from health_check.views import HealthCheckView

from . import views

urlpatterns = [
    path("ht/", HealthCheckView.as_view(checks=["health_check.checks.Database", "smokesite.views.Broker"])),
    path("accounts/login/", LoginView.as_view()),
    path("api/csrf/", views.csrf),
    path("api/login/", views.api_login),
    path("api/me", views.me),
    path("api/notes/", views.notes),
    path("api/notes/<int:note_id>/", views.note),
    path("dashboard/", views.dashboard),
    path("hop/<int:left>/", views.hop),
    path("slow/", views.slow),
    path("trickle/", views.trickle),
    path("reset/", views.reset),
]
