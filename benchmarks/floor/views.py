"""The floor view: what a request costs when the view does nothing. benchmarks/hot_paths.py measures
the hot paths as a fraction of it, in this project (benchmarks.floor.urls) and in the peer
(benchmarks/peer/urls.py)."""

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
