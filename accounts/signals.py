"""Deactivating a user revokes their sessions, wherever the change comes from (admin, shell, code)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import RevokeReason
from .services import sessions_revoke_for_users


@receiver(post_save, sender=get_user_model(), dispatch_uid="accounts.revoke_sessions_of_inactive_user")
def revoke_sessions_of_inactive_user(sender, instance, created, update_fields=None, **kwargs):
    """An inactive user keeps no session (access tokens are refused at once anyway); a later save
    of the inactive user finds nothing to revoke and records nothing."""
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    sessions_revoke_for_users(user_ids=[instance.pk], reason=RevokeReason.USER_DEACTIVATED)
