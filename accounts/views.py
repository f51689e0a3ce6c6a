"""Thin views: parse input, call one service, set or clear the refresh cookie, answer.

Errors are not handled here: services raise domain errors and accounts.exceptions turns them into
responses.
"""

from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import cookies, health, selectors, services
from .csrf import csrf_enforce
from .errors import AuthError, SessionNotFound
from .models import RevokeReason
from .serializers import (
    AccessTokenSerializer,
    DetailSerializer,
    LoginResponseSerializer,
    LoginSerializer,
    PasswordChangeSerializer,
    RegisterSerializer,
    RevokedCountSerializer,
    SessionSerializer,
    UserSerializer,
)
from .throttles import LoginIPThrottle, LoginUsernameThrottle, request_origin
from .tokens import refresh_token_verify


class PublicView(APIView):
    """No authentication: anyone may call it."""

    authentication_classes = ()
    permission_classes = (AllowAny,)


class RefreshCookieView(PublicView):
    """Reads the ambient refresh cookie, so Django's CSRF check guards it (Origin and token)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        csrf_enforce(request._request)


class HealthView(PublicView):
    @extend_schema(responses={200: OpenApiResponse(description="All parts ok"), 503: OpenApiResponse()})
    def get(self, request):
        report = health.health_report()
        if report["status"] == "ok":
            return Response(report)
        failing = ", ".join(part for part, state in report.items() if part != "status" and state != "ok")
        body = {"detail": f"Unavailable: {failing}.", "code": "service_unavailable", **report}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class CsrfView(PublicView):
    """The CSRF token in the body, for an SPA on another allowed origin that cannot read the cookie."""

    @extend_schema(responses={200: OpenApiResponse(description='{"csrf_token": "..."}')})
    def get(self, request):
        return Response({"csrf_token": get_token(request._request)})


class RegisterView(PublicView):
    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(PublicView):
    throttle_classes = (LoginIPThrottle, LoginUsernameThrottle)

    @extend_schema(request=LoginSerializer, responses={200: LoginResponseSerializer})
    def post(self, request):
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.session_login(**serializer.validated_data, origin=request_origin(request))
        response = Response(LoginResponseSerializer(issued).data)
        cookies.refresh_cookie_set(response, issued.refresh)
        return response


class RefreshView(RefreshCookieView):
    @extend_schema(request=None, responses={200: AccessTokenSerializer})
    def post(self, request):
        token = refresh_token_verify(cookies.refresh_cookie_get(request))
        issued = services.session_refresh(token=token, origin=request_origin(request))
        response = Response(AccessTokenSerializer(issued).data)
        cookies.refresh_cookie_set(response, issued.refresh)
        return response

    def handle_exception(self, exc):
        """A refresh that fails with 401 also clears the dead cookie (a CSRF 403 changes nothing)."""
        response = super().handle_exception(exc)
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            cookies.refresh_cookie_delete(response)
        return response


class LogoutView(RefreshCookieView):
    @extend_schema(request=None, responses={200: DetailSerializer})
    def post(self, request):
        try:
            token = refresh_token_verify(cookies.refresh_cookie_get(request))
            services.session_logout(token=token, origin=request_origin(request))
        except AuthError:
            pass  # idempotent: no cookie, or a dead one, still logs the browser out
        response = Response({"detail": "Logged out."})
        cookies.refresh_cookie_delete(response)
        return response


class LogoutAllView(APIView):
    @extend_schema(request=None, responses={200: RevokedCountSerializer})
    def post(self, request):
        revoked = services.sessions_revoke_for_user(
            user_id=request.user.pk, reason=RevokeReason.LOGOUT_ALL, origin=request_origin(request)
        )
        response = Response({"revoked": revoked})
        cookies.refresh_cookie_delete(response)
        return response


class SessionListView(APIView):
    @extend_schema(responses={200: SessionSerializer(many=True)})
    def get(self, request):
        sessions = selectors.sessions_list_for_user(user=request.user)
        context = {"current_session_id": request.auth.session_id}
        return Response(SessionSerializer(sessions, many=True, context=context).data)


class SessionDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, session_id):
        if not services.session_revoke(
            session_id=session_id,
            user_id=request.user.pk,
            reason=RevokeReason.REVOKED_BY_USER,
            origin=request_origin(request),
        ):
            raise SessionNotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeView(APIView):
    @extend_schema(request=PasswordChangeSerializer, responses={200: DetailSerializer})
    def post(self, request):
        serializer = PasswordChangeSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        services.user_change_password(
            user=request.user,
            **serializer.validated_data,
            keep_session_id=request.auth.session_id,
            origin=request_origin(request),
        )
        return Response({"detail": "Password changed; your other sessions were signed out."})


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer})
    def get(self, request):
        return Response(UserSerializer(request.user).data)
