"""Input validation and output shapes. No side effects here: services do the writing.

Login, refresh and logout subclass simplejwt's serializers, so a simplejwt user recognises them and a
project can name its own subclass in SIMPLE_JWT (TOKEN_OBTAIN_SERIALIZER, TOKEN_REFRESH_SERIALIZER,
TOKEN_BLACKLIST_SERIALIZER). Unlike simplejwt's, their ``validate`` only checks the input: the view
calls a service with it and renders the service's result with ``to_representation``.
"""

import io

import segno
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework_simplejwt import serializers as jwt_serializers

from . import mfa, transports
from .errors import UsernameTaken
from .models import Passkey, Session
from .tokens import RefreshToken

PASSWORD_MAX_LENGTH = 4096  # hashing is deliberately slow; refuse megabyte "passwords"
USERNAME_MAX_LENGTH = 150
TOKEN_MAX_LENGTH = 4096  # a refresh token is a few hundred characters, even signed with RSA


# DRF refuses NUL characters in text; this says so in the schema too (a ``pattern``).
NO_NUL = RegexValidator(r"^[^\x00]*$", message="Null characters are not allowed.")


class StringOnlyMixin:
    """A text field that takes only a JSON string: DRF's CharField would take 123 as "123", which
    the schema (type: string) says is invalid input. The schema also states the rest of what the
    field refuses: blank (``minLength: 1``) unless allowed, and NUL characters (a ``pattern``;
    a field's own pattern, such as the username's, comes after it and is stated instead)."""

    def __init__(self, **kwargs):
        if not kwargs.get("allow_blank"):
            kwargs.setdefault("min_length", 1)
        kwargs["validators"] = [NO_NUL, *kwargs.get("validators", [])]
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StringField(StringOnlyMixin, serializers.CharField):
    pass


class EmailField(StringOnlyMixin, serializers.EmailField):
    pass


class PasswordField(StringOnlyMixin, jwt_serializers.PasswordField):
    pass


def _password_field(**kwargs) -> serializers.CharField:
    return PasswordField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, **kwargs)


def _refresh_field() -> serializers.CharField:
    """The body transport's refresh token, sent back by a client that is not a browser."""
    return StringField(required=False, write_only=True, max_length=TOKEN_MAX_LENGTH, trim_whitespace=False)


def _user_fields(model) -> list[str]:
    """The user fields the API shows: the primary key (``id`` for Django's users), the user
    model's name and email fields, and Django's usual profile fields where the model has them."""
    wanted = [
        model._meta.pk.name,
        model.USERNAME_FIELD,
        model.get_email_field_name(),
        "first_name",
        "last_name",
        "date_joined",
    ]
    names = {field.name for field in model._meta.get_fields()}
    return list(dict.fromkeys(name for name in wanted if name in names))


class ShallowFieldCopiesMixin:
    """Each call gets a shallow copy of each declared field, not DRF's deep copy (every field built
    again from its arguments): for the serializers of the hot paths, whose fields keep nothing of
    a call but their binding, which each copy gets anew.

    Only for leaf fields: a field that holds another (a ListField's or DictField's ``child``, a
    ManyRelatedField's ``child_relation``) or is a serializer binds that one once, when it is
    declared, so its copies would share it, bound to no serializer and with an empty context. A
    class using this mixin that declares one is refused when it is created (TypeError).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # SerializerMetaclass collects the declared fields before the class is made.
        for name, field in cls._declared_fields.items():
            if holds := _nested_field(field):
                raise TypeError(
                    f"{cls.__qualname__}.{name} ({type(field).__name__}) {holds}, which the copies "
                    f"that ShallowFieldCopiesMixin makes would share between calls, bound to no "
                    f"serializer; declare it on a serializer without ShallowFieldCopiesMixin."
                )

    def get_fields(self):
        # DRF's private _declared_fields, as its own get_fields reads it (canary: tests/test_canaries.py::
        # test_drf_serializers_keep_their_declared_fields_in_declared_fields).
        return {name: _shallow_copy(field) for name, field in self._declared_fields.items()}


def _nested_field(field: serializers.Field) -> str:
    """What makes ``field`` unfit for a shallow copy ("" if nothing): a serializer, or a field
    holding another field."""
    if isinstance(field, serializers.BaseSerializer):
        return "is a nested serializer"
    for attribute, value in vars(field).items():
        if isinstance(value, serializers.Field) and not attribute.startswith("_"):
            return f"holds a field of its own ({attribute})"
    return ""


def _shallow_copy(field: serializers.Field) -> serializers.Field:
    """What ``copy.copy`` makes of a field (a new instance sharing its attributes' values), without
    the trip through ``__reduce_ex__`` that costs more than the copy."""
    copied = object.__new__(type(field))
    copied.__dict__.update(field.__dict__)
    return copied


def _user_serializer() -> type[serializers.Serializer]:
    """``UserSerializer``: the user as the API shows it, read-only.

    A plain Serializer whose fields are declared once, here, from the project's user model (mapped
    by ModelSerializer's rules): a ModelSerializer would map them again on every call, and every
    API call's ``me`` pays for what a serializer does per call.
    """

    class UserFields(serializers.ModelSerializer):
        class Meta:
            model = get_user_model()
            fields = _user_fields(model)
            read_only_fields = fields

    fields = UserFields().get_fields()
    bases = (ShallowFieldCopiesMixin, serializers.Serializer)
    return type("UserSerializer", bases, {"__module__": __name__, **fields})


UserSerializer = _user_serializer()


class RegisterSerializer(serializers.Serializer):
    username = StringField(max_length=USERNAME_MAX_LENGTH, validators=[get_user_model().username_validator])
    email = EmailField(max_length=254)
    password = _password_field()

    def validate_username(self, value):
        """The name as the user model stores it (NFKC: "\u212aelvin" is "Kelvin"), free.

        Checked after normalizing, as ``create_user`` saves it; a concurrent registration that
        takes the name after this check is caught by the unique index (``services.user_create``).
        """
        model = get_user_model()
        normalized = model.normalize_username(value)
        if model.objects.filter(username=normalized).exists():
            raise serializers.ValidationError(UsernameTaken.message, code=UsernameTaken.code)
        return normalized

    def validate(self, attrs):
        user = get_user_model()(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user)
        except DjangoValidationError as e:
            raise serializers.ValidationError({"password": list(e.messages)}) from e
        return attrs


class InputOnlyMixin:
    """For simplejwt's token serializers, whose ``validate`` does the work (authenticates, rotates,
    blacklists): here it only checks the input, and the view calls a service with it. Tokens made
    through ``get_token`` are this app's, so they carry a session."""

    token_class = RefreshToken

    def validate(self, attrs):
        return attrs


class AccessTokenFields(serializers.Serializer):
    """Renders what a service issued (``services.IssuedTokens``): the access token and its expiry."""

    access = serializers.SerializerMethodField()
    access_expires_at = serializers.DateTimeField(source="access.expires_at", read_only=True)

    def get_access(self, issued) -> str:
        return str(issued.access)


class LoginSerializer(InputOnlyMixin, AccessTokenFields, jwt_serializers.TokenObtainPairSerializer):
    """simplejwt's credentials in (the user model's USERNAME_FIELD and ``password``; the service
    checks them and records the attempt) with the refresh token's ``transport``; the access token
    and the user out. The refresh token goes by the transport (accounts.transports): its cookie by
    default, the body only for clients that are not browsers."""

    user = UserSerializer(source="session.user", read_only=True)
    transport = serializers.ChoiceField(
        choices=transports.CHOICES, default=transports.COOKIE, write_only=True
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = StringField(
            max_length=USERNAME_MAX_LENGTH, trim_whitespace=False, write_only=True
        )
        self.fields["password"] = _password_field()

    def credentials(self) -> dict:
        """The validated credentials as ``services.session_login`` takes them."""
        return {
            "username": self.validated_data[self.username_field],
            "password": self.validated_data["password"],
        }


class RefreshSerializer(
    ShallowFieldCopiesMixin, InputOnlyMixin, AccessTokenFields, jwt_serializers.TokenRefreshSerializer
):
    """The refresh token in the body (body transport), or nothing (it comes in its cookie); the new
    access token out."""

    refresh = _refresh_field()


class LogoutSerializer(InputOnlyMixin, jwt_serializers.TokenBlacklistSerializer):
    """The refresh token in the body (body transport), or nothing (it comes in its cookie); a
    message out."""

    refresh = _refresh_field()
    detail = serializers.CharField(read_only=True)


# --- the body transport's answers, for the OpenAPI document ------------------------------------
class LoginBodySerializer(transports.RefreshTokenFields, LoginSerializer):
    """Login's answer with ``"transport": "body"``: the refresh token and its expiry as well."""


class RefreshBodySerializer(transports.RefreshTokenFields, RefreshSerializer):
    """Refresh's answer to a refresh token sent in the body: the rotated one comes back there."""


class PasswordChangeSerializer(serializers.Serializer):
    old_password = _password_field()
    new_password = _password_field()

    def validate_new_password(self, value):
        try:
            password_validation.validate_password(value, self.context["request"].user)
        except DjangoValidationError as e:
            raise serializers.ValidationError(list(e.messages)) from e
        return value


KEY_MAX_LENGTH = 256  # a reset key is under 100 characters


class PasswordResetSerializer(serializers.Serializer):
    email = EmailField(max_length=254)


class PasswordResetConfirmSerializer(serializers.Serializer):
    """The key from the mailed link and the new password; the service checks both (the validators
    need the key's account)."""

    key = StringField(max_length=KEY_MAX_LENGTH, trim_whitespace=False)
    new_password = _password_field()


class SessionSerializer(serializers.ModelSerializer):
    expires_at = serializers.DateTimeField(read_only=True)  # Session.expires_at: the earlier expiry
    current = serializers.SerializerMethodField()
    amr = serializers.ListField(
        child=serializers.CharField(),
        source="amr_values",
        read_only=True,
        help_text='How the user signed in, as RFC 8176 values: ["pwd"], ["pwd", "otp"], ["hwk", "user"].',
    )
    auth_time = serializers.DateTimeField(
        read_only=True, help_text="When the user signed in, or last re-authenticated, in this session."
    )

    class Meta:
        model = Session
        # device: a name for people ("Chrome 131 on macOS"), from user_agent when the session began.
        # amr and auth_time: what the session's access tokens carry (RFC 8176 methods; the sign-in's
        # or the last re-authentication's time).
        fields = [
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "ip",
            "device",
            "user_agent",
            "amr",
            "auth_time",
            "current",
        ]
        read_only_fields = fields

    def get_current(self, session) -> bool:
        """Whether this is the session of the access token making the request."""
        return str(session.pk) == str(self.context.get("current_session_id"))


class RevokedCountSerializer(serializers.Serializer):
    revoked = serializers.IntegerField()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


# --- verified addresses ----------------------------------------------------------------------
KEY_MAX_LENGTH = 512  # a verification key is about 110 characters


class MeSerializer(UserSerializer):
    """``GET /api/users/me/``: the user, and whether their address is verified."""

    email_verified = serializers.SerializerMethodField()

    def get_email_verified(self, user) -> bool:
        """Read off the access check's one statement (``selectors.user_get_for_access_token``);
        looked up when the user came another way (stateless access tokens)."""
        from .email_verification import email_is_verified
        from .selectors import EMAIL_VERIFIED

        verified = getattr(user, EMAIL_VERIFIED, None)
        return email_is_verified(user=user) if verified is None else bool(verified)


class EmailVerifySerializer(serializers.Serializer):
    key = StringField(max_length=KEY_MAX_LENGTH, trim_whitespace=False, write_only=True)


class EmailVerifyResendSerializer(serializers.Serializer):
    """Without a Bearer token, the address to mail again; with one, nothing (the caller's)."""

    email = EmailField(max_length=254, required=False, write_only=True)


class EmailChangeSerializer(serializers.Serializer):
    new_email = EmailField(max_length=254)
    password = _password_field()


# --- second factors (accounts.mfa) ---------------------------------------------------------------
CODE_MAX_LENGTH = 64  # a TOTP code is 6 digits, a recovery code 11 characters (spaces allowed)
MFA_TOKEN_MAX_LENGTH = 128  # secrets.token_urlsafe(32): 43 characters


def _code_field(**kwargs) -> serializers.CharField:
    return StringField(max_length=CODE_MAX_LENGTH, write_only=True, **kwargs)


class PasskeySummarySerializer(serializers.Serializer):
    """A passkey as its owner sees it in the list (never its key)."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)


class MfaStateSerializer(serializers.Serializer):
    """``GET /api/auth/mfa/``: the caller's second factors (``selectors.second_factors_summary``)."""

    totp = serializers.BooleanField(source="totp_on", read_only=True, help_text="A confirmed authenticator app is on.")
    recovery_codes_left = serializers.IntegerField(read_only=True)
    passkeys = PasskeySummarySerializer(many=True, read_only=True)


class TotpEnrolmentSerializer(serializers.Serializer):
    """A pending authenticator app: the secret, the otpauth URI, and the URI as a QR code."""

    secret = serializers.CharField(read_only=True, help_text="Base32; for typing into an app by hand.")
    otpauth_uri = serializers.CharField(read_only=True)
    qr_svg = serializers.SerializerMethodField(
        help_text="The otpauth URI as a QR code, an SVG document (drawn by the server with segno) for "
        "a page to show as it is; it holds the secret, so it is never cached or logged."
    )

    def get_qr_svg(self, enrolment) -> str:
        """Drawn here, on the server, so that no page needs a QR library (or sends the secret to one)."""
        drawn = io.BytesIO()
        qr = segno.make(enrolment.otpauth_uri, error="m")
        qr.save(
            drawn, kind="svg", xmldecl=False, nl=False, scale=4, border=4, title="Authenticator app QR code"
        )
        return drawn.getvalue().decode()


class CodeSerializer(serializers.Serializer):
    code = _code_field(help_text="The 6 digits the authenticator app shows now.")


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(),
        min_length=mfa.RECOVERY_CODES,
        max_length=mfa.RECOVERY_CODES,
        read_only=True,
        help_text="Shown this once: each works once, instead of a code of the app (case, spaces and "
        "dashes do not matter).",
    )


class SecondFactorRequiredSerializer(serializers.Serializer):
    """Login's answer for a user with a second factor (``services.SecondFactorRequired``)."""

    mfa_required = serializers.BooleanField(read_only=True)
    mfa_token = serializers.CharField(read_only=True, help_text="For POST /api/auth/mfa/verify/; works once.")
    methods = serializers.ListField(
        child=serializers.ChoiceField(choices=[mfa.TOTP, mfa.RECOVERY_CODE, mfa.PASSKEY]), read_only=True
    )


class MfaVerifySerializer(AccessTokenFields):
    """The login's second step: the ``mfa_token`` and either a ``code`` (the authenticator app's, or
    a recovery code) or a ``passkey`` (a WebAuthn assertion, JSON); out, what login answers."""

    mfa_token = StringField(max_length=MFA_TOKEN_MAX_LENGTH, trim_whitespace=False, write_only=True)
    code = _code_field(required=False, help_text="A code of the authenticator app, or a recovery code.")
    passkey = serializers.DictField(
        required=False, write_only=True, help_text="A WebAuthn assertion (its JSON form), instead of a code."
    )
    user = UserSerializer(source="session.user", read_only=True)

    def validate(self, attrs):
        if ("code" in attrs) == ("passkey" in attrs):
            raise serializers.ValidationError("Give either a code or a passkey.", code="invalid")
        return attrs


class MfaVerifyBodySerializer(transports.RefreshTokenFields, MfaVerifySerializer):
    """The second step's answer when login asked for body transport."""


class ReauthenticateSerializer(serializers.Serializer):
    """One of: the password, a code of a second factor, or a passkey's assertion."""

    password = _password_field(required=False, write_only=True)
    code = _code_field(required=False, help_text="A code of the authenticator app, or a recovery code.")
    passkey = serializers.DictField(
        required=False,
        write_only=True,
        help_text="A WebAuthn assertion (its JSON form) for the options of "
        "POST /api/auth/passkeys/reauthenticate/options/.",
    )

    def validate(self, attrs):
        if sum(name in attrs for name in ("password", "code", "passkey")) != 1:
            raise serializers.ValidationError("Give one of the password, a code or a passkey.", code="invalid")
        return attrs


class AccessSerializer(AccessTokenFields):
    """A new access token for the caller's session (``services.IssuedTokens``'s access token)."""


# --- passkeys (accounts.passkeys) --------------------------------------------------------------


class CredentialField(serializers.DictField):
    """A WebAuthn credential in its JSON form (``PublicKeyCredential.toJSON()``): an object, which
    accounts.passkeys parses and verifies (anything else in it is an invalid_code there)."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text", "The credential's JSON form, as PublicKeyCredential.toJSON() gives it."
        )
        super().__init__(**kwargs)


class PasskeySerializer(serializers.ModelSerializer):
    class Meta:
        model = Passkey
        fields = ["id", "name", "created_at"]
        read_only_fields = fields


class PasskeyRegisterSerializer(serializers.Serializer):
    credential = CredentialField(write_only=True)
    name = StringField(max_length=Passkey._meta.get_field("name").max_length)


class CreationOptionsSerializer(serializers.Serializer):
    """Creation options in their JSON form (WebAuthn Level 3), for
    ``PublicKeyCredential.parseCreationOptionsFromJSON()`` and ``navigator.credentials.create()``."""

    rp = serializers.DictField(help_text="{id: WEBAUTHN_RP_ID, name: WEBAUTHN_RP_NAME}")
    user = serializers.DictField(help_text="{id (base64url, opaque), name, displayName}")
    challenge = serializers.CharField(help_text="base64url; works once, for WEBAUTHN_CHALLENGE_TIMEOUT")
    pubKeyCredParams = serializers.ListField(child=serializers.DictField())
    timeout = serializers.IntegerField(help_text="milliseconds")
    excludeCredentials = serializers.ListField(
        child=serializers.DictField(), help_text="The user's passkeys."
    )
    authenticatorSelection = serializers.DictField()
    attestation = serializers.CharField()


class RequestOptionsSerializer(serializers.Serializer):
    """Request options in their JSON form (WebAuthn Level 3), for
    ``PublicKeyCredential.parseRequestOptionsFromJSON()`` and ``navigator.credentials.get()``."""

    challenge = serializers.CharField(help_text="base64url; works once, for WEBAUTHN_CHALLENGE_TIMEOUT")
    timeout = serializers.IntegerField(help_text="milliseconds")
    rpId = serializers.CharField(help_text="WEBAUTHN_RP_ID")
    allowCredentials = serializers.ListField(
        child=serializers.DictField(), help_text="The user's passkeys; empty for a passwordless sign-in."
    )
    userVerification = serializers.CharField()


class PasskeyLoginOptionsSerializer(serializers.Serializer):
    """Nothing, for a passwordless sign-in; a login's ``mfa_token``, for the second step."""

    mfa_token = StringField(
        required=False, max_length=MFA_TOKEN_MAX_LENGTH, trim_whitespace=False, write_only=True
    )


class PasskeyLoginSerializer(AccessTokenFields):
    """A credential and the refresh token's ``transport`` in; login's answer out."""

    credential = CredentialField(write_only=True)
    transport = serializers.ChoiceField(
        choices=transports.CHOICES, default=transports.COOKIE, write_only=True
    )
    user = UserSerializer(source="session.user", read_only=True)


class PasskeyLoginBodySerializer(transports.RefreshTokenFields, PasskeyLoginSerializer):
    """The passkey sign-in's answer with ``"transport": "body"``."""
