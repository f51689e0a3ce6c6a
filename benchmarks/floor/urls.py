"""The project's URLs and error views, with the floor at /api/bench/floor/ before them (and so before
the /api/ catch-all)."""

from django.urls import path

# Django reads the error views from the root URLconf: the project's, here too.
from authproject.urls import handler400, handler403, handler404, handler500  # noqa: F401
from authproject.urls import urlpatterns as project_urlpatterns

from .views import FloorView

urlpatterns = [path("api/bench/floor/", FloorView.as_view(), name="bench-floor"), *project_urlpatterns]
