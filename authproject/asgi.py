"""ASGI entry point (e.g. uvicorn authproject.asgi:application).

Like wsgi.py: app servers skip Django's system checks, so the unsafe-configuration refusal runs here.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authproject.settings")

application = get_asgi_application()

from accounts.checks import refuse_unsafe_configuration  # noqa: E402 - after setup: needs the app registry

refuse_unsafe_configuration()
