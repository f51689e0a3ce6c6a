from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import Member


@admin.register(Member)
class MemberAdmin(UserAdmin):
    """A plain UserAdmin, as any project writes one; accounts adds the sessions to it at startup."""
