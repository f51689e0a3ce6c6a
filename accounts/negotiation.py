"""Content negotiation for an API that answers in JSON only."""

from rest_framework.negotiation import DefaultContentNegotiation

# What clients send when any JSON answer will do: nothing (wrk, curl), anything, or JSON itself.
_TAKES_JSON = frozenset({"", "*/*", "application/json"})


class JSONNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, less the parsing of an Accept header that takes JSON anyway: with one
    renderer and no ``?format=`` there is nothing to choose, on every request. Anything else is
    DRF's to answer (406 where the Accept header rules JSON out, 404 for another format)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            len(renderers) == 1
            and not format_suffix
            and not request.META.get("QUERY_STRING")
            and request.META.get("HTTP_ACCEPT", "") in _TAKES_JSON
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
