"""The floor of benchmarks/hot_paths.py: the project with a bare view mounted, selected by
DJANGO_SETTINGS_MODULE=benchmarks.floor.settings; never in production."""
