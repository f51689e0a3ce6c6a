"""Thin views: parse input, call one service, hand the refresh token out (or clear it), answer.

Login, refresh and logout are simplejwt's views, customized: the session rules run in services; the
refresh token travels in its cookie for browsers or in the body for other clients
(accounts.transports). Every view here brings its own authentication, parsers, renderers and
exception handler, so the app answers the same in any project, whatever that project's
REST_FRAMEWORK defaults. Errors are not handled here: services raise domain errors and
accounts.http_errors turns them into responses.
"""

from functools import cache

from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.http import http_date
from django.utils.module_loading import import_string
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views

from . import (
    cookies,
    email_verification,
    health,
    keys,
    metrics,
    mfa,
    passkeys,
    password_reset,
    selectors,
    services,
    throttles,
    transports,
)
from .authentication import SessionJWTAuthentication
from .conf import app_settings, jwt_settings
from .errors import AuthError, MfaTokenInvalid, SessionNotFound
from .http_errors import api_exception_handler, error_body
from .logs import log_context_bind
from .models import RevokeReason
from .negotiation import JSONNegotiation
from .origin import request_origin, request_origin_lazy
from .parsers import StrictJSONParser
from .permissions import RecentlyAuthenticated
from .schema import DERIVED_ERRORS, AnyShapeSerializer, AppAutoSchema
from .serializers import (
    AccessSerializer,
    CodeSerializer,
    CreationOptionsSerializer,
    DetailSerializer,
    EmailChangeSerializer,
    EmailVerifyResendSerializer,
    EmailVerifySerializer,
    LoginBodySerializer,
    LoginSerializer,
    LogoutSerializer,
    MeSerializer,
    MfaStateSerializer,
    MfaVerifyBodySerializer,
    MfaVerifySerializer,
    PasskeyLoginBodySerializer,
    PasskeyLoginOptionsSerializer,
    PasskeyLoginSerializer,
    PasskeyRegisterSerializer,
    PasskeySerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetSerializer,
    ReauthenticateSerializer,
    RecoveryCodesSerializer,
    RefreshBodySerializer,
    RefreshSerializer,
    RegisterSerializer,
    RequestOptionsSerializer,
    RevokedCountSerializer,
    SecondFactorRequiredSerializer,
    SessionSerializer,
    TotpEnrolmentSerializer,
    UserSerializer,
)
from .throttles import (
    EmailVerifyKeyThrottle,
    EmailVerifyResendAddressThrottle,
    EmailVerifyResendIPThrottle,
    LOGIN_THROTTLES,
    MfaThrottle,
    PASSWORD_RESET_THROTTLES,
    PasskeyLoginIPThrottle,
    PasskeyOptionsIPThrottle,
    PasskeyOptionsUserThrottle,
    PasswordChangeThrottle,
    PasswordResetConfirmThrottle,
    RegisterThrottle,
)
from .tokens import refresh_token_verify


class AppViewMixin:
    """What every endpoint of this app brings along instead of reading the project's defaults."""

    parser_classes = (StrictJSONParser,)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = JSONNegotiation
    metadata_class = None  # OPTIONS is for CORS preflights (answered by the middleware), else 405
    schema = AppAutoSchema()

    def get_exception_handler(self):
        """This app's handler (one error shape), not REST_FRAMEWORK's EXCEPTION_HANDLER."""
        return api_exception_handler


class ApiView(AppViewMixin, APIView):
    """An endpoint for a signed-in user: a Bearer access token whose session is active."""

    authentication_classes = (SessionJWTAuthentication,)
    permission_classes = (IsAuthenticated,)


class PublicView(AppViewMixin, APIView):
    """No authentication: anyone may call it."""

    authentication_classes = ()
    permission_classes = (AllowAny,)


@cache
def _never_cache_control() -> str:
    """The Cache-Control that Django's ``add_never_cache_headers`` writes on an answer without one
    (``no-store`` among others): worked out once, since it parses and rebuilds the header each time."""
    response = HttpResponse()
    add_never_cache_headers(response)
    return response["Cache-Control"]


class NoStoreMixin:
    """For answers that carry a token or a CSRF token: no cache (browser, proxy) may keep them."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.has_header("Cache-Control") or response.has_header("Expires"):
            add_never_cache_headers(response)  # merged into what is there
        else:  # what add_never_cache_headers would write
            response.headers["Expires"] = http_date()
            response.headers["Cache-Control"] = _never_cache_control()
        return response


class TokenView(NoStoreMixin, AppViewMixin, jwt_views.TokenViewBase):
    """simplejwt's TokenViewBase in small steps: validate the input, choose the refresh token's
    transport (``accounts.transports``: cookie or body), call one service, answer with the
    serializer's rendering of its result, and hand the refresh token out by that transport.

    The serializer is the one SIMPLE_JWT names, if the project names one (a subclass of this app's),
    else this app's; it is looked up per request, not at import.
    """

    serializer_setting = ""
    default_serializer_class = None
    transport = None
    takes_refresh_token = True  # refresh and logout read one; login issues one

    def get_serializer_class(self):
        """SIMPLE_JWT[serializer_setting] when the project sets it, else this app's serializer."""
        if self.serializer_setting in jwt_settings().user_settings:
            return import_string(getattr(jwt_settings(), self.serializer_setting))
        return self.default_serializer_class

    def post(self, request, *args, **kwargs):
        """Validate, choose and admit the transport, perform, render, hand out the refresh token."""
        serializer = self.get_serializer(data=self.request_data(request))
        serializer.is_valid(raise_exception=True)
        self.transport = self.get_transport(serializer.validated_data)
        self.transport.admit(request)
        result = self.perform(serializer)
        if isinstance(result, services.IssuedTokens):  # the request's later log lines name them
            log_context_bind(user_id=result.session.user_id, session_id=result.session.pk)
        return self.answer(serializer, result)

    def answer(self, serializer, result) -> Response:
        """The serializer's rendering of the result, and the refresh token handed out."""
        response = Response(serializer.to_representation(result))
        self.hand_out(response, result)
        return response

    def request_data(self, request):
        """The parsed body. A body that cannot be parsed carries no token, so the request can only
        be the cookie's, and the cookie's CSRF check answers first: a cross-site form POST gets 403
        csrf_failed, not 415."""
        try:
            return request.data
        except (ParseError, UnsupportedMediaType):
            if self.takes_refresh_token:
                transports.CookieTransport().check(request)
            raise

    def get_transport(self, validated_data: dict):
        """The body's when the client sent its refresh token there, else the cookie's."""
        return transports.transport_for(transports.BODY if "refresh" in validated_data else transports.COOKIE)

    def refresh_token(self, serializer) -> str | None:
        """The raw refresh token, from where the transport says it travels."""
        return self.transport.read(self.request, serializer.validated_data)

    def perform(self, serializer):
        """The one service call, with the validated input; its result is what the body renders."""
        raise NotImplementedError

    def hand_out(self, response, issued) -> None:
        """The issued refresh token goes out by the request's transport."""
        self.transport.hand_out(response, issued)


def _by_transport(name: str, cookie, body, description: str, *others) -> OpenApiResponse:
    """A 200 answer in one of two shapes: the cookie transport's or the body transport's (or
    ``others``: login's second-factor answer)."""
    shapes = AnyShapeSerializer(
        component_name=name, serializers=[cookie, body, *others], resource_type_field_name=None
    )
    return OpenApiResponse(shapes, description=description)


class HealthView(PublicView):
    error_statuses = {503: "A part failed; the body names it (`database`, `cache`: ok or error)."}

    @extend_schema(responses={200: OpenApiResponse(description="All parts ok")})
    def get(self, request):
        report = health.health_report()
        if report["status"] == "ok":
            return Response(report)
        failing = ", ".join(part for part, state in report.items() if part != "status" and state != "ok")
        body = error_body(f"Unavailable: {failing}.", "service_unavailable", **report)
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class CsrfView(NoStoreMixin, PublicView):
    """The CSRF token in the body, for an SPA on another allowed origin that cannot read the cookie."""

    uses_backing_services = False

    @extend_schema(responses={200: OpenApiResponse(description='{"csrf_token": "..."}')})
    def get(self, request):
        return Response({"csrf_token": get_token(request)})


class RegisterView(PublicView):
    throttle_classes = (RegisterThrottle,)

    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(**serializer.validated_data, origin=request_origin(request))
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    post=extend_schema(
        responses={
            200: _by_transport(
                "LoginAnswer",
                LoginSerializer,
                LoginBodySerializer,
                "Cookie transport (default): the refresh token in the refresh_token cookie (Set-Cookie). "
                'Body transport ("transport": "body", clients that are not browsers): the refresh token '
                "and its expiry in the body, and no cookie. A user with a second factor gets "
                '`{"mfa_required": true, "mfa_token", "methods"}` instead: no token, no cookie, no '
                "session until POST /api/auth/mfa/verify/.",
                SecondFactorRequiredSerializer,
            )
        }
    )
)
class LoginView(TokenView, jwt_views.TokenObtainPairView):
    """simplejwt's TokenObtainPairView: the credentials open a session."""

    serializer_setting = "TOKEN_OBTAIN_SERIALIZER"
    default_serializer_class = LoginSerializer
    takes_refresh_token = False
    throttle_classes = LOGIN_THROTTLES
    sets_refresh_cookie = True
    error_statuses = {
        401: "Wrong password, unknown or inactive user: `invalid_credentials`.",
        403: "EMAIL_VERIFICATION is mandatory and the address is not verified: `email_unverified`.",
    }

    def get_transport(self, validated_data: dict):
        """The transport the client asked for (``"transport"``, the cookie by default)."""
        return transports.transport_for(validated_data.get("transport", transports.COOKIE))

    def perform(self, serializer):
        return services.session_login(
            **serializer.credentials(), transport=self.transport.name, origin=request_origin(self.request)
        )

    def answer(self, serializer, result) -> Response:
        """A second factor asked for: the mfa_token, and nothing handed out."""
        if isinstance(result, services.SecondFactorRequired):
            return Response(SecondFactorRequiredSerializer(result).data)
        return super().answer(serializer, result)


@extend_schema_view(
    post=extend_schema(
        responses={
            200: _by_transport(
                "RefreshAnswer",
                RefreshSerializer,
                RefreshBodySerializer,
                "A refresh token from the cookie (CSRF-checked) is answered with a rotated cookie; one "
                "from the body (no CSRF check; no Origin header, or a native app's) with the rotated "
                "token in the body.",
            )
        }
    )
)
class RefreshView(TokenView, jwt_views.TokenRefreshView):
    """simplejwt's TokenRefreshView: the refresh token rotates (see services.session_refresh)."""

    serializer_setting = "TOKEN_REFRESH_SERIALIZER"
    default_serializer_class = RefreshSerializer
    reads_refresh_cookie = sets_refresh_cookie = True
    error_statuses = {
        401: "No refresh token, or a dead one (`token_not_valid`, `token_expired`, `token_revoked`).",
        403: "Cookie transport: the CSRF check failed (`csrf_failed`).",
    }

    def perform(self, serializer):
        try:
            token = refresh_token_verify(self.refresh_token(serializer))
        except AuthError:  # no token, or one that does not verify: the session rules never see it
            metrics.refresh_counted(result="refused")
            raise
        return services.session_refresh(token=token, origin=request_origin_lazy(self.request))

    def handle_exception(self, exc):
        """A refresh that fails with 401 also clears a dead cookie (a CSRF 403 changes nothing)."""
        response = super().handle_exception(exc)
        if response.status_code == status.HTTP_401_UNAUTHORIZED and self.transport is not None:
            self.transport.discard(response)
        return response


class LogoutView(TokenView, jwt_views.TokenBlacklistView):
    """simplejwt's TokenBlacklistView: the token's session is revoked (and its cookie deleted)."""

    serializer_setting = "TOKEN_BLACKLIST_SERIALIZER"
    default_serializer_class = LogoutSerializer
    reads_refresh_cookie = sets_refresh_cookie = True
    error_statuses = {403: "Cookie transport: the CSRF check failed (`csrf_failed`)."}

    def perform(self, serializer):
        raw = self.refresh_token(serializer)
        try:
            services.session_logout(token=refresh_token_verify(raw), origin=request_origin(self.request))
        except AuthError:
            pass  # idempotent: no token, or a dead one, still logs the client out
        return {"detail": "Logged out."}

    def hand_out(self, response, result) -> None:
        """Logged out: nothing to hand out; a cookie is deleted."""
        self.transport.discard(response)


class LogoutAllView(ApiView):
    sets_refresh_cookie = True

    @extend_schema(request=None, responses={200: RevokedCountSerializer})
    def post(self, request):
        revoked = services.sessions_logout_all(user=request.user, origin=request_origin(request))
        response = Response({"revoked": revoked})
        cookies.refresh_cookie_delete(response)
        return response


class SessionListView(ApiView):
    @extend_schema(responses={200: SessionSerializer(many=True)})
    def get(self, request):
        sessions = selectors.sessions_list_for_user(user=request.user)
        context = {"current_session_id": request.auth.session_id}
        return Response(SessionSerializer(sessions, many=True, context=context).data)


class SessionDetailView(ApiView):
    error_statuses = {404: "No such session among the caller's own (`not_found`)."}

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


class PasswordChangeView(ApiView):
    throttle_classes = (PasswordChangeThrottle,)

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


class PasswordResetView(PublicView):
    """Ask for a reset link: the same answer, whether or not an account uses the address."""

    throttle_classes = PASSWORD_RESET_THROTTLES

    @extend_schema(request=PasswordResetSerializer, responses={202: DetailSerializer})
    def post(self, request):
        serializer = PasswordResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        password_reset.password_reset_request(**serializer.validated_data, origin=request_origin(request))
        detail = "If an account uses that address, a link to reset its password is on its way."
        return Response({"detail": detail}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicView):
    """A new password with the key from the mailed link; every session ends, nobody is signed in."""

    throttle_classes = (PasswordResetConfirmThrottle,)
    error_statuses = {
        400: "Invalid input (`invalid`, messages per field in `errors`, the password validators' "
        "under `new_password`), or a bad, used or expired key (`invalid_key`)."
    }

    @extend_schema(request=PasswordResetConfirmSerializer, responses={200: DetailSerializer})
    def post(self, request):
        serializer = PasswordResetConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        password_reset.password_reset_confirm(**serializer.validated_data, origin=request_origin(request))
        return Response({"detail": "Password reset; every session was signed out. Sign in again."})


class MeView(ApiView):
    @extend_schema(responses={200: MeSerializer})
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class JwksView(PublicView):
    """GET /.well-known/jwks.json: the public keys that verify this service's tokens (RFC 7517),
    so that other services verify them without any secret; ``{"keys": []}`` under HMAC."""

    uses_backing_services = False  # key files read at startup's checks, no database or cache

    @extend_schema(
        operation_id="jwks_retrieve",
        responses={200: OpenApiResponse(description='{"keys": [{"kty", "kid", "alg", "use", ...}]}')},
    )
    def get(self, request):
        response = Response(keys.jwks())
        # Verifiers cache it this long, so a new key is published at least this long before it signs.
        patch_cache_control(response, public=True, max_age=int(app_settings.JWKS_MAX_AGE.total_seconds()))
        return response


# --- verified addresses (accounts.email_verification) -------------------------------------------
class EmailVerifyView(PublicView):
    """POST /api/auth/email/verify/: no authentication, since the link may open on another device."""

    throttle_classes = (EmailVerifyKeyThrottle,)
    error_statuses = {400: "Invalid input, or a bad, used or expired key: `invalid_key`."}

    @extend_schema(request=EmailVerifySerializer, responses={200: DetailSerializer})
    def post(self, request):
        serializer = EmailVerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email_verification.email_verify(**serializer.validated_data, origin=request_origin(request))
        return Response({"detail": "Your e-mail address is verified."})


class EmailVerifyResendView(PublicView):
    """POST /api/auth/email/verify/resend/: with a Bearer token, for the caller's address; without
    one, for ``email``, answered alike whether or not an unverified account uses it."""

    authentication_classes = (SessionJWTAuthentication,)  # optional: anonymous callers give an address
    throttle_classes = (EmailVerifyResendIPThrottle, EmailVerifyResendAddressThrottle)

    @extend_schema(request=EmailVerifyResendSerializer, responses={202: DetailSerializer})
    def post(self, request):
        serializer = EmailVerifyResendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if request.user.is_authenticated:
            email_verification.verification_resend(user=request.user, origin=request_origin(request))
        elif "email" in serializer.validated_data:
            email_verification.verification_resend_for_address_later(email=serializer.validated_data["email"])
        else:
            required = {"email": ["This field is required without a Bearer token."]}
            raise ValidationError(required, code="required")
        return Response(
            {"detail": "If an address waits for verification, a new link is on its way."},
            status=status.HTTP_202_ACCEPTED,
        )


class EmailChangeView(ApiView):
    """POST /api/auth/email/change/: a link to the new address, a notice to the old one."""

    permission_classes = (RecentlyAuthenticated,)
    throttle_classes = (PasswordChangeThrottle,)  # a password is tried: the same limit as password change
    error_statuses = {401: RecentlyAuthenticated.described}

    @extend_schema(request=EmailChangeSerializer, responses={202: DetailSerializer})
    def post(self, request):
        serializer = EmailChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email_verification.email_change_request(
            user=request.user, **serializer.validated_data, origin=request_origin(request)
        )
        return Response(
            {"detail": "Follow the link mailed to the new address to change to it."},
            status=status.HTTP_202_ACCEPTED,
        )


# --- second factors (accounts.mfa) --------------------------------------------------------------
class MfaStateView(ApiView):
    """GET /api/auth/mfa/: the caller's second factors."""

    @extend_schema(responses={200: MfaStateSerializer})
    def get(self, request):
        return Response(MfaStateSerializer(selectors.second_factors_summary(user=request.user)).data)


class TotpView(NoStoreMixin, ApiView):
    """POST /api/auth/mfa/totp/ starts setting up an authenticator app; DELETE turns it off."""

    permission_classes = (RecentlyAuthenticated,)
    error_statuses = {
        401: RecentlyAuthenticated.described,
        409: "POST: an authenticator app is on already (`totp_already_enabled`); turn it off first.",
    }

    @extend_schema(request=None, responses={200: TotpEnrolmentSerializer})
    def post(self, request):
        return Response(TotpEnrolmentSerializer(mfa.totp_enrol(user=request.user)).data)

    @extend_schema(responses={204: None})
    def delete(self, request):
        mfa.totp_disable(user=request.user, origin=request_origin(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpConfirmView(NoStoreMixin, ApiView):
    """POST /api/auth/mfa/totp/confirm/: a code from the app turns it on; recovery codes, once."""

    throttle_classes = (MfaThrottle,)
    error_statuses = {
        401: "No valid Bearer access token (as everywhere), or a wrong code (`invalid_code`).",
        409: "No authenticator app waits to be confirmed (`totp_not_pending`), or one is on already "
        "(`totp_already_enabled`).",
    }

    @extend_schema(request=CodeSerializer, responses={200: RecoveryCodesSerializer})
    def post(self, request):
        serializer = CodeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        codes = mfa.totp_confirm(
            user=request.user, **serializer.validated_data, origin=request_origin(request)
        )
        return Response({"recovery_codes": codes})


class RecoveryCodesView(NoStoreMixin, ApiView):
    """POST /api/auth/mfa/recovery-codes/: a new set, shown once; the old set dead."""

    permission_classes = (RecentlyAuthenticated,)
    error_statuses = {
        401: RecentlyAuthenticated.described,
        409: "The caller has no second factor for recovery codes to stand in for (`no_second_factor`).",
    }

    @extend_schema(request=None, responses={200: RecoveryCodesSerializer})
    def post(self, request):
        codes = mfa.recovery_codes_regenerate(user=request.user, origin=request_origin(request))
        return Response({"recovery_codes": codes})


@extend_schema_view(
    post=extend_schema(
        description="The login's second step: the `mfa_token` login answered and a code (the "
        "authenticator app's, or a recovery code) or a passkey; answers as login does, in the "
        "transport login was asked for.",
        responses={
            200: _by_transport(
                "MfaVerifyAnswer",
                MfaVerifySerializer,
                MfaVerifyBodySerializer,
                "What login answers, in the transport login was asked for: the refresh token in its "
                "cookie (Set-Cookie), or with body transport in the body and no cookie.",
            )
        }
    )
)
class MfaVerifyView(TokenView):
    """POST /api/auth/mfa/verify/: the login's second step; answers as login does."""

    default_serializer_class = MfaVerifySerializer
    takes_refresh_token = False
    sets_refresh_cookie = True
    # Counted once the mfa_token names its user (get_transport): DRF's check before it names nobody,
    # so it counts nothing, and a stranger's invalid token spends no one's budget.
    throttle_classes = (MfaThrottle,)
    pending = None
    error_statuses = {
        400: "Invalid input (`invalid`): neither or both of `code` and `passkey`; body transport "
        "refused to a browser (`body_transport_forbidden`).",
        401: "The mfa_token is unknown, used, expired or dead after 5 wrong codes (`mfa_token_invalid`: "
        "sign in again), or the code is wrong or the passkey refused (`invalid_code`).",
    }

    def get_transport(self, validated_data: dict):
        """The transport login was asked for, kept by the pending step that the ``mfa_token`` names
        (resolved here, once; MfaTokenInvalid if it does not work), after one attempt of its user
        is counted (MFA_THROTTLE_RATE)."""
        self.pending = mfa.mfa_token_pending(token=validated_data["mfa_token"])
        if self.pending is None:
            raise MfaTokenInvalid()
        wait = throttles.mfa_attempt_wait(self.request, user_id=self.pending.user_id)
        if wait is not None:
            self.throttled(self.request, wait)
        return transports.transport_for(self.pending.transport)

    def perform(self, serializer):
        origin, data = request_origin(self.request), serializer.validated_data
        if "passkey" in data:
            return passkeys.passkey_second_step(pending=self.pending, credential=data["passkey"], origin=origin)
        return services.session_login_second_step(pending=self.pending, code=data["code"], origin=origin)


class ReauthenticateView(NoStoreMixin, ApiView):
    """POST /api/auth/reauthenticate/: the password, a code or a passkey again; a new access token
    whose ``auth_time`` is now, kept by the session's next refreshes."""

    throttle_classes = (MfaThrottle,)
    error_statuses = {
        401: "No valid Bearer access token (as everywhere), a wrong password (`invalid_credentials`), "
        "or a wrong code or a refused passkey (`invalid_code`).",
        429: "Throttled (`throttled`, per user, MFA_THROTTLE_RATE), or every password-check slot busy "
        "(Retry-After: 1).",
    }

    @extend_schema(request=ReauthenticateSerializer, responses={200: AccessSerializer})
    def post(self, request):
        serializer = ReauthenticateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, origin, session_id = serializer.validated_data, request_origin(request), request.auth.session_id
        if "passkey" in data:
            issued = passkeys.passkey_reauthenticate(
                user=request.user, session_id=session_id, credential=data["passkey"], origin=origin
            )
        else:
            issued = services.session_reauthenticate(
                user=request.user, session_id=session_id, **data, origin=origin
            )
        log_context_bind(user_id=request.user.pk, session_id=issued.session.pk)
        return Response(AccessSerializer(issued).data)


# --- passkeys (accounts.passkeys) ----------------------------------------------------------------
NOT_RECENT = "; or the sign-in is not recent enough (`reauthentication_required`: re-authenticate first)"
CREDENTIAL_REFUSED = (
    "The credential does not verify: unknown or used challenge, another origin or RP ID, a bad "
    "signature, no user verification where it is required, a counter that did not grow (`invalid_code`)"
)


class PasskeyRegisterOptionsView(NoStoreMixin, ApiView):
    """POST /api/auth/passkeys/register/options/: creation options for a new passkey."""

    permission_classes = (RecentlyAuthenticated,)
    throttle_classes = (PasskeyOptionsUserThrottle,)
    error_statuses = {401: DERIVED_ERRORS[401] + NOT_RECENT + "."}

    @extend_schema(request=None, responses={200: CreationOptionsSerializer})
    def post(self, request):
        return Response(passkeys.passkey_registration_options(user=request.user))


class PasskeyRegisterView(ApiView):
    """POST /api/auth/passkeys/register/: the new credential, verified, becomes a passkey."""

    error_statuses = {
        401: f"{DERIVED_ERRORS[401]} {CREDENTIAL_REFUSED}.",
        409: "That credential is registered already (`passkey_exists`).",
    }

    @extend_schema(request=PasskeyRegisterSerializer, responses={201: PasskeySerializer})
    def post(self, request):
        serializer = PasskeyRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        passkey = passkeys.passkey_register(
            user=request.user, **serializer.validated_data, origin=request_origin(request)
        )
        return Response(PasskeySerializer(passkey).data, status=status.HTTP_201_CREATED)


class PasskeyDetailView(ApiView):
    """DELETE /api/auth/passkeys/{id}/: remove one of the caller's passkeys."""

    permission_classes = (RecentlyAuthenticated,)
    error_statuses = {
        401: DERIVED_ERRORS[401] + NOT_RECENT + ".",
        404: "No such passkey among the caller's own (`not_found`).",
    }

    @extend_schema(responses={204: None})
    def delete(self, request, passkey_id):
        passkeys.passkey_remove(user=request.user, passkey_id=passkey_id, origin=request_origin(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasskeyLoginOptionsView(NoStoreMixin, PublicView):
    """POST /api/auth/passkeys/login/options/: request options for a passwordless sign-in (``{}``:
    any passkey, user verification required), or for the second step of a login (``{mfa_token}``:
    that user's passkeys)."""

    throttle_classes = (PasskeyOptionsIPThrottle,)
    error_statuses = {401: "The `mfa_token` is unknown, used, expired or dead (`mfa_token_invalid`)."}

    @extend_schema(request=PasskeyLoginOptionsSerializer, responses={200: RequestOptionsSerializer})
    def post(self, request):
        serializer = PasskeyLoginOptionsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if "mfa_token" in serializer.validated_data:
            return Response(passkeys.passkey_second_factor_options(**serializer.validated_data))
        return Response(passkeys.passkey_login_options())


class PasskeyReauthenticateOptionsView(NoStoreMixin, ApiView):
    """POST /api/auth/passkeys/reauthenticate/options/: request options to re-authenticate with one
    of the caller's passkeys (user verification required); the credential goes to
    /api/auth/reauthenticate/ as ``{passkey}``."""

    throttle_classes = (PasskeyOptionsUserThrottle,)

    @extend_schema(request=None, responses={200: RequestOptionsSerializer})
    def post(self, request):
        return Response(passkeys.passkey_reauthenticate_options(user=request.user))


@extend_schema_view(
    post=extend_schema(
        responses={
            200: _by_transport(
                "PasskeyLoginAnswer",
                PasskeyLoginSerializer,
                PasskeyLoginBodySerializer,
                "As login answers: the refresh token in its cookie (default), or in the body with "
                '"transport": "body" (clients that are not browsers).',
            )
        }
    )
)
class PasskeyLoginView(TokenView):
    """POST /api/auth/passkeys/login/: a passwordless sign-in; answers as login does."""

    default_serializer_class = PasskeyLoginSerializer
    takes_refresh_token = False
    throttle_classes = (PasskeyLoginIPThrottle,)
    sets_refresh_cookie = True
    error_statuses = {
        400: f"{DERIVED_ERRORS[400]} Body transport asked for by a browser (an `Origin` header that is not "
        "one of NATIVE_APP_ORIGINS), or turned off: `body_transport_forbidden`.",
        401: f"{CREDENTIAL_REFUSED}.",
        403: "EMAIL_VERIFICATION is mandatory and the address is not verified: `email_unverified`.",
    }
    get_transport = LoginView.get_transport  # the transport asked for, as at login

    def perform(self, serializer):
        return passkeys.passkey_login(
            credential=serializer.validated_data["credential"], origin=request_origin(self.request)
        )
