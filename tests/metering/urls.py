"""The management API with the usage endpoints registered as portal/api_urls.py will register them."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from metering.api import register
from portal.api_urls import router as portal_router

router = SimpleRouter(trailing_slash=False)
router.registry.extend(portal_router.registry)
register(router)

urlpatterns = [path("api/v1/", include(router.urls))]
