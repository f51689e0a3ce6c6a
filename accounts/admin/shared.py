"""What the session, user and audit admins share: searching by the user and by the start of an
id, and the link to an object's admin page."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from .. import selectors


def user_search_fields(*, through: str, email: bool = True) -> tuple[str, ...]:
    """The user model's name field (and email field, if it has one), reached ``through`` a
    relation, for admin search."""
    user_model = get_user_model()
    names = [user_model.USERNAME_FIELD]
    if email and user_model.get_email_field_name() != user_model.USERNAME_FIELD:
        names.append(user_model.get_email_field_name())
    fields = {field.name for field in user_model._meta.get_fields()}
    return tuple(f"{through}__{name}" for name in names if name in fields)


def id_prefix_q(field: str, search_term: str) -> Q | None:
    """The search term as the start of a UUID field, if it is one (8 hex characters or more)."""
    term = search_term.strip()
    if len(term.replace("-", "")) < selectors.SESSION_ID_MIN_PREFIX:
        return None
    return selectors.uuid_prefix_q(field, term)


def admin_change_url(site: admin.AdminSite, model, pk) -> str | None:
    """The admin page of one object of ``model`` on ``site``, or None if the site has none."""
    try:
        return reverse(f"{site.name}:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    except NoReverseMatch:
        return None
