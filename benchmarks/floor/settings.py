"""The project's settings with the floor view mounted (benchmarks.floor.urls): what
benchmarks/hot_paths.py serves this checkout with, through DJANGO_SETTINGS_MODULE. Everything else is
authproject.settings, read from the same environment."""

from authproject.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.floor.urls"
