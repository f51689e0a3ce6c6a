#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path


def main():
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authproject.settings")
    # The development settings `make run` writes (authproject/settings.py reads them); an empty
    # DJANGO_ENV_FILE reads none, as `make serve` and the tests ask.
    os.environ.setdefault("DJANGO_ENV_FILE", str(Path(__file__).resolve().parent / ".env"))
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # reads the environment (authproject/settings.py)
    except ImproperlyConfigured as e:
        # A variable that cannot be used (DATABASE_URL, CACHE_URL, EMAIL_URL, ...): the message names
        # it, and a traceback through the settings module would only hide it.
        sys.exit(f"Configuration error: {e}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
