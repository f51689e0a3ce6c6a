"""dj-rest-auth's endpoints under /api/auth/ (login/, user/, token/refresh/, logout/ ...) and the peer's
floor: the same bare view as this project's (benchmarks/floor/views.py), behind the peer's middleware."""

from django.urls import include, path
from floor.views import FloorView  # benchmarks/ is the peer's working directory

urlpatterns = [
    path("api/auth/", include("dj_rest_auth.urls")),
    path("api/bench/floor/", FloorView.as_view()),
]
