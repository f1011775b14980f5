from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from portal import views

admin.site.site_header = "Cortensor Portal operations"
admin.site.site_title = "Cortensor Portal admin"

handler404 = "portal.views.not_found"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("apikeys.urls")),
    path("", include("billing.urls")),
    path("", include("metering.urls")),
    path("", include("portal.api_urls")),
]
