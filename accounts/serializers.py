"""Input validation and output shapes. No side effects here: services do the writing."""

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from .models import Session

PASSWORD_MAX_LENGTH = 4096  # hashing is deliberately slow; refuse megabyte "passwords"


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(
        max_length=150,
        validators=[
            UniqueValidator(queryset=get_user_model().objects.all(), message="That username is taken."),
            get_user_model().username_validator,
        ],
    )
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, write_only=True)

    def validate(self, attrs):
        user = get_user_model()(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user)
        except DjangoValidationError as e:
            raise serializers.ValidationError({"password": list(e.messages)}) from e
        return attrs


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False)


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False)
    new_password = serializers.CharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False)

    def validate_new_password(self, value):
        try:
            password_validation.validate_password(value, self.context["request"].user)
        except DjangoValidationError as e:
            raise serializers.ValidationError(list(e.messages)) from e
        return value


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "date_joined"]
        read_only_fields = fields


class AccessTokenSerializer(serializers.Serializer):
    """The body of a refresh: the new access token and when it expires."""

    access = serializers.SerializerMethodField()
    access_expires_at = serializers.DateTimeField(source="access.expires_at")

    def get_access(self, issued) -> str:
        return str(issued.access)


class LoginResponseSerializer(AccessTokenSerializer):
    """The body of a login: the access token and the user. The refresh token goes in the cookie."""

    user = UserSerializer(source="session.user")


class SessionSerializer(serializers.ModelSerializer):
    expires_at = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    class Meta:
        model = Session
        fields = ["id", "created_at", "last_used_at", "expires_at", "ip", "user_agent", "current"]
        read_only_fields = fields

    def get_expires_at(self, session) -> str:
        """When the session ends if unused: its refresh token's expiry (never past the absolute one)."""
        return serializers.DateTimeField().to_representation(session.idle_expires_at)

    def get_current(self, session) -> bool:
        """Whether this is the session of the access token making the request."""
        return str(session.pk) == str(self.context.get("current_session_id"))


class RevokedCountSerializer(serializers.Serializer):
    revoked = serializers.IntegerField()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
