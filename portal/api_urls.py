"""The management API under /api/v1, its OpenAPI schema and its docs page (assets served locally)."""

from __future__ import annotations

from django.conf import settings
from django.urls import include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.routers import SimpleRouter

from apikeys.api import ApiKeyViewSet
from metering.api import register as register_usage

DOCS_CSP = settings.SECURE_CSP

router = SimpleRouter(trailing_slash=False)
router.register("keys", ApiKeyViewSet, basename="apikey")
register_usage(router)

urlpatterns = [
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path(
        "api/docs/",
        # Redoc styles itself with inline <style> and searches in a blob: worker.
        csp_override({**DOCS_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE], "worker-src": ["blob:"]})(
            SpectacularRedocView.as_view(url_name="api_schema")
        ),
        name="api_docs",
    ),
]
