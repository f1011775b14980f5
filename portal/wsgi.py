"""WSGI entry point, for tools that need one. Production serves portal/asgi.py (the gateway is ASGI only)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()
