from django.contrib.auth.models import AbstractUser
from django.db import models


class Member(AbstractUser):
    """Not Django's User: members sign in with their email address (USERNAME_FIELD)."""

    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    class Meta:
        db_table = "member"
