"""WSGI entry point (gunicorn authproject.wsgi).

Django runs its system checks only for management commands; an app server starting with an unsafe
configuration (see accounts/checks.py) must refuse to start too, so they run here as well.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authproject.settings")

application = get_wsgi_application()

from accounts.checks import refuse_unsafe_configuration  # noqa: E402 - after setup: needs the app registry

refuse_unsafe_configuration()
