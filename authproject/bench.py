"""Endpoints for benchmarks only. authproject.urls mounts them when BENCHMARK_ENDPOINTS is on (never in
production; see README, Configuration): benchmarks/hot_paths.py measures against them."""

from rest_framework.response import Response
from rest_framework.views import APIView


class FloorView(APIView):
    """The floor: a bare DRF view behind the project's full middleware. No authentication, permission
    or throttle, and an empty JSON object back, so a request costs what Django and DRF cost when the
    view does nothing; the hot paths are measured as a fraction of it."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()
    schema = None  # not part of the API: left out of the OpenAPI document

    def get(self, request):
        return Response({})
