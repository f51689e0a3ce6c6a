"""The project's startup checks on its environment (the accounts app checks its own settings).

A misspelled variable (LOGIN_THROTLE_RATE) is not an error Django can see: the setting it meant
keeps its default. So a variable set in the environment that the settings do not read, but that is
one edit (a letter added, dropped, changed, or two neighbours swapped) from one they do, is
pointed out. Only names that look like ours are compared: with an underscore and 8 characters or
more, so that the shell's own (HOME, PATH, USER, ...) never are.
"""

import os

from django.conf import settings
from django.core import checks

MIN_COMPARED_LENGTH = 8


def one_edit_apart(a: str, b: str) -> bool:
    """True if ``b`` is ``a`` with one letter added, dropped or changed, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        different = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(different) == 1:
            return True
        i, j = (different + [None, None])[:2]
        return len(different) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    shorter, longer = sorted((a, b), key=len)
    i = next((i for i, (x, y) in enumerate(zip(shorter, longer)) if x != y), len(shorter))
    return shorter[i:] == longer[i + 1 :]


def looks_like_ours(name: str) -> bool:
    """Whether an environment variable's name is worth comparing with the ones the settings read."""
    return "_" in name and len(name) >= MIN_COMPARED_LENGTH


def near_misses(environment, known) -> dict[str, str]:
    """Each variable of ``environment`` that is not ``known`` but an edit away from one that is,
    with that one."""
    known = set(known)
    found = {}
    for name in sorted(environment):
        if name in known or not looks_like_ours(name):
            continue
        meant = next((k for k in sorted(known) if one_edit_apart(name, k)), None)
        if meant is not None:
            found[name] = meant
    return found


@checks.register()
def check_misspelled_environment_variables(app_configs=None, **kwargs):
    """A variable one edit from one the settings read is most likely meant to be that one."""
    known = getattr(settings, "ENVIRONMENT_VARIABLES_READ", [])
    return [
        checks.Warning(
            f"The environment variable {name} is not read; did you mean {meant}?",
            hint=f"Rename it to {meant}: as it is, {meant} keeps its default.",
            id="authproject.W001",
        )
        for name, meant in near_misses(os.environ, known).items()
    ]
