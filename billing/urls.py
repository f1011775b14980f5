from __future__ import annotations

from django.urls import path

from billing import views

urlpatterns = [
    path("orgs/<slug:slug>/plan/", views.plan_detail, name="plan_detail"),
    path("orgs/<slug:slug>/plan/upgrade", views.plan_upgrade_request, name="plan_upgrade_request"),
]
