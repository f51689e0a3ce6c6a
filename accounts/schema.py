"""OpenAPI descriptions drf-spectacular cannot infer on its own.

``AppAutoSchema`` (every view of this app uses it) declares every answer an endpoint can give, so a
schema-driven fuzzer finds no undocumented one: the error statuses in the one error body, with
``Retry-After`` on 429; the refresh cookie and the ``X-CSRFToken`` header on the endpoints that read
the cookie; ``Set-Cookie`` on the answers that set it. Which statuses apply is derived from the view
(a request body: 400, 413, 415; authentication: 401; throttles: 429; backing services: 503) plus
the view's own ``error_statuses``.
"""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers

from .cookies import refresh_cookie_name


class SessionJWTScheme(SimpleJWTScheme):
    """SessionJWTAuthentication is simplejwt's bearer scheme with a session check on top."""

    target_class = "accounts.authentication.SessionJWTAuthentication"


class ErrorSerializer(serializers.Serializer):
    """The one error body (``accounts.http_errors.error_body``)."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Validation errors: messages per field.")

    class Meta:
        ref_name = "Error"


class AnyShapeSerializer(PolymorphicProxySerializer):
    """One of several answer shapes that may overlap (the body transport's answer has every field of
    the cookie transport's, and more): ``anyOf``, where ``oneOf`` would refuse an answer that fits
    both."""


class AnyShapeSerializerExtension(OpenApiSerializerExtension):
    target_class = AnyShapeSerializer

    def get_name(self):
        return self.target.component_name

    def map_serializer(self, auto_schema, direction):
        return {
            "anyOf": [
                auto_schema.resolve_serializer(shape, direction).ref for shape in self.target.serializers
            ]
        }


# Status: when it applies, as the schema describes it.
DERIVED_ERRORS = {
    400: "Invalid input: not JSON, nested too deeply, a lone surrogate, or a field error (`errors`).",
    401: "No valid Bearer access token, or its session was revoked or expired.",
    413: "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    415: "The body is not application/json.",
    429: "Throttled (code `throttled`); Retry-After says when to try again.",
    503: "The database or cache does not answer (code `service_unavailable`).",
}


DUPLICATE_COOKIE = (
    "Two refresh cookies in one request (one may be another host's, set for a shared parent "
    "domain): `duplicate_refresh_cookie`, and neither is used."
)


class AppAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with every answer of this app's views declared."""

    def error_statuses(self) -> dict[int, str]:
        """The error statuses this operation can answer, each with its description."""
        view, errors = self.view, {}
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors.update({code: DERIVED_ERRORS[code] for code in (400, 413, 415)})
        if view.authentication_classes:
            errors[401] = DERIVED_ERRORS[401]
        if view.throttle_classes:
            errors[429] = DERIVED_ERRORS[429]
        if getattr(view, "uses_backing_services", True):
            errors[503] = DERIVED_ERRORS[503]
        if getattr(view, "reads_refresh_cookie", False):
            errors[400] = f"{errors.get(400, 'Bad request.')} {DUPLICATE_COOKIE}"
        errors.update(getattr(view, "error_statuses", {}))
        return dict(sorted(errors.items()))

    def get_override_parameters(self):
        """The refresh cookie and CSRF header where the cookie is read; response headers."""
        parameters = list(super().get_override_parameters())
        if getattr(self.view, "reads_refresh_cookie", False):
            parameters += [
                OpenApiParameter(
                    refresh_cookie_name(),
                    OpenApiTypes.STR,
                    OpenApiParameter.COOKIE,
                    description="The refresh token (cookie transport; httpOnly, set by login).",
                ),
                OpenApiParameter(
                    "X-CSRFToken",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    description="With the refresh cookie: the csrftoken cookie's value "
                    "(GET /api/auth/csrf/ gives it in the body).",
                ),
            ]
        if getattr(self.view, "sets_refresh_cookie", False):
            parameters.append(
                OpenApiParameter(
                    "Set-Cookie",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    response=[200],
                    description="Cookie transport: the refresh token's cookie (HttpOnly; Secure; "
                    "Path=/api/auth/), set, rotated or deleted.",
                )
            )
        if self.view.throttle_classes:
            parameters.append(
                OpenApiParameter(
                    "Retry-After",
                    OpenApiTypes.INT,
                    OpenApiParameter.HEADER,
                    response=[429],
                    description="Seconds until the limit's window ends.",
                )
            )
        return parameters

    # drf-spectacular's private _get_response_bodies and _get_response_for_code: it has no public
    # hook that adds responses to every operation (canary: tests/test_canaries.py::
    # test_drf_spectacular_builds_responses_through_get_response_bodies).
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in self.error_statuses().items():
            if str(code) not in responses:
                answer = OpenApiResponse(ErrorSerializer, description=description)
                responses[str(code)] = self._get_response_for_code(answer, str(code), direction=direction)
        return responses
