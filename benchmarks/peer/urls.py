"""dj-rest-auth's endpoints under /api/auth/ (login/, user/, token/refresh/, logout/ ...) and the peer's
floor."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class FloorView(APIView):
    """A bare DRF view behind the peer's middleware: the peer's floor (authproject/bench.py's twin)."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    def get(self, request):
        return Response({})


urlpatterns = [
    path("api/auth/", include("dj_rest_auth.urls")),
    path("api/bench/floor/", FloorView.as_view()),
]
