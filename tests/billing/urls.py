"""The portal's URLs plus the plan pages, until portal/urls.py includes billing.urls (then this adds nothing)."""

from __future__ import annotations

from django.urls import include, path

from portal.urls import urlpatterns as portal_urlpatterns

urlpatterns = [*portal_urlpatterns, path("", include("billing.urls"))]
