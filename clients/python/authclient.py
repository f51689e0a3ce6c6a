"""A small client for apps that are not browsers: a CLI, a desktop or server-side program.

It signs in with body transport (the refresh token comes back in the JSON body, since there is no
browser cookie jar to keep it safe), calls the API with the access token, refreshes on a 401 once
per expiry however many threads hit it at the same moment (single flight), and signs out. Where the
refresh token is kept between runs is the caller's choice, through a two-method store::

    client = AuthClient("https://auth.example.com", store=MyKeyringStore())
    client.login("alice", "correct horse battery staple")
    print(client.get("/api/users/me/").json())
    client.logout()

Only httpx is needed. The access token stays in memory; the store sees only the refresh token.

With a second factor on the account, ``login()`` returns an ``MfaStep`` instead of the user, and
``verify_mfa()`` finishes the sign-in with a code from the authenticator app or a recovery code::

    step = client.login("alice", "correct horse battery staple")
    if isinstance(step, MfaStep):
        client.verify_mfa(step, input("Code: "))

A hybrid app's web view sends an ``Origin`` of its own; ``origin=`` sends it on every request, as
the web view would (the server admits it to body transport when it is one of NATIVE_APP_ORIGINS)::

    client = AuthClient("https://auth.example.com", origin="capacitor://localhost")
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

__all__ = ["AuthClient", "MemoryStore", "MfaStep", "SignedOut", "TokenStore"]

EXPIRED_ACCESS = {"token_expired", "token_not_valid", "token_revoked", "not_authenticated"}


class TokenStore(Protocol):
    """Where the refresh token is kept between runs (a keyring, a file with mode 600, ...)."""

    def load(self) -> str | None:
        """The stored refresh token, or None."""

    def save(self, refresh: str | None) -> None:
        """Keep ``refresh``; None means forget it."""


class MemoryStore:
    """Keeps the refresh token for this process only."""

    def __init__(self, refresh: str | None = None):
        self._refresh = refresh

    def load(self) -> str | None:
        return self._refresh

    def save(self, refresh: str | None) -> None:
        self._refresh = refresh


class SignedOut(Exception):
    """The session is over (logged out, revoked, expired): sign in again."""

    def __init__(self, code: str = "not_authenticated"):
        super().__init__(f"signed out ({code})")
        self.code = code


@dataclass(frozen=True)
class MfaStep:
    """A login waiting for its second factor: the token for ``verify_mfa()`` (it works once, for
    MFA_TOKEN_TIMEOUT seconds, and dies after 5 wrong codes) and the methods the user has."""

    token: str = field(repr=False)
    methods: tuple[str, ...]


class _SessionAuth(httpx.Auth):
    """Sends the access token; on a 401 refreshes once (single flight) and retries the request once."""

    requires_response_body = True  # the 401's code says whether a refresh can help

    def __init__(self, client: AuthClient):
        self._client = client

    def auth_flow(self, request):
        sent_with = self._client._access
        if sent_with:
            request.headers["Authorization"] = f"Bearer {sent_with}"
        response = yield request
        if response.status_code != 401 or _code(response) not in EXPIRED_ACCESS:
            return
        access = self._client._refresh_after(sent_with)
        request.headers["Authorization"] = f"Bearer {access}"
        yield request


class AuthClient:
    """Sign in, call the API, refresh when the access token is refused, sign out."""

    def __init__(
        self,
        base_url: str,
        *,
        store: TokenStore | None = None,
        on_logout: Callable[[str], None] | None = None,
        origin: str | None = None,
        **httpx_options,
    ):
        self.store = store if store is not None else MemoryStore()
        self.on_logout = on_logout
        self._access: str | None = None
        self._lock = threading.Lock()
        if origin is not None:  # a hybrid app's (capacitor://localhost): one of NATIVE_APP_ORIGINS
            httpx_options["headers"] = {**httpx_options.get("headers", {}), "Origin": origin}
        self.http = httpx.Client(base_url=base_url, **httpx_options)
        self._auth = _SessionAuth(self)

    # --- the session ----------------------------------------------------------------------
    def login(self, username: str, password: str) -> dict | MfaStep:
        """Sign in; returns the user, or an ``MfaStep`` when the account has a second factor (then
        nobody is signed in until ``verify_mfa()``). Raises httpx.HTTPStatusError on wrong
        credentials (401)."""
        response = self.http.post(
            "/api/auth/login/", json={"username": username, "password": password, "transport": "body"}
        )
        return self._signed_in_or_step(response)

    def verify_mfa(self, step: MfaStep, code: str) -> dict:
        """The second step of a login: a code from the authenticator app or a recovery code; returns
        the user. Raises httpx.HTTPStatusError: 401 ``invalid_code`` for a wrong or used code, 401
        ``mfa_token_invalid`` once the step is over (expired, used, too many wrong codes)."""
        response = self.http.post("/api/auth/mfa/verify/", json={"mfa_token": step.token, "code": code})
        return self._signed_in_or_step(response)

    def reauthenticate(self, *, password: str | None = None, code: str | None = None) -> None:
        """Prove it is still the same person, with the password or a code, after a 401
        ``reauthentication_required``: the new access token carries a fresh ``auth_time``."""
        if (password is None) == (code is None):
            raise TypeError("reauthenticate() takes either password= or code=")
        proof = {"password": password} if password is not None else {"code": code}
        response = self.post("/api/auth/reauthenticate/", json=proof)
        response.raise_for_status()
        with self._lock:
            self._access = response.json()["access"]

    def restore(self) -> bool:
        """Resume the stored session (a new access token from the stored refresh token)."""
        if not self.store.load():
            return False
        try:
            self._refresh_after(None)
        except SignedOut:
            return False
        return True

    def logout(self) -> None:
        """Revoke this session on the server and forget its tokens."""
        refresh = self.store.load()
        try:
            if refresh:
                self.http.post("/api/auth/logout/", json={"refresh": refresh})
        finally:
            self._forget("logged_out")

    # --- second factors of the signed-in user (changes need a recent sign-in: reauthenticate()) --
    def mfa_status(self) -> dict:
        """``{"totp": bool, "recovery_codes_left": n, "passkeys": [...]}``."""
        return self._json("GET", "/api/auth/mfa/")

    def start_totp(self) -> dict:
        """Start enrolling an authenticator app: ``{"secret", "otpauth_uri", "qr_svg"}``; it stays off
        until ``confirm_totp()``."""
        return self._json("POST", "/api/auth/mfa/totp/", json={})

    def confirm_totp(self, code: str) -> list[str]:
        """Turn the app on with a code it shows; returns the 10 recovery codes (shown this once)."""
        return self._json("POST", "/api/auth/mfa/totp/confirm/", json={"code": code})["recovery_codes"]

    def disable_totp(self) -> None:
        """Turn the authenticator app off (its recovery codes stop working)."""
        self.delete("/api/auth/mfa/totp/").raise_for_status()

    def regenerate_recovery_codes(self) -> list[str]:
        """A new set of 10 recovery codes; the old ones stop working."""
        return self._json("POST", "/api/auth/mfa/recovery-codes/", json={})["recovery_codes"]

    # --- account e-mail (no session needed: a link may open on another device) ------------------
    def request_password_reset(self, email: str) -> None:
        """Ask for a password-reset link; answered alike whether or not an account uses ``email``."""
        self.http.post("/api/auth/password/reset/", json={"email": email}).raise_for_status()

    def confirm_password_reset(self, key: str, new_password: str) -> None:
        """Set a new password with the key from a reset link. It signs nobody in, and every session
        of the account ends (this client's too, if it was that account's)."""
        body = {"key": key, "new_password": new_password}
        self.http.post("/api/auth/password/reset/confirm/", json=body).raise_for_status()

    def verify_email(self, key: str) -> None:
        """Verify an address with the key from a verification link."""
        self.http.post("/api/auth/email/verify/", json={"key": key}).raise_for_status()

    def resend_verification(self, email: str | None = None) -> None:
        """Send the verification link again: for the signed-in user's address, or for ``email``."""
        if email is None:
            self.post("/api/auth/email/verify/resend/", json={}).raise_for_status()
        else:
            self.http.post("/api/auth/email/verify/resend/", json={"email": email}).raise_for_status()

    def change_email(self, new_email: str, password: str) -> None:
        """Ask to change the signed-in user's address: a link goes to the new one, which becomes the
        account's when that link is verified."""
        body = {"new_email": new_email, "password": password}
        self.post("/api/auth/email/change/", json=body).raise_for_status()

    # --- calling the API ------------------------------------------------------------------
    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """An API call with the access token, refreshed and retried once when it is refused."""
        return self.http.request(method, url, auth=self._auth, **kwargs)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _json(self, method: str, url: str, **kwargs) -> dict:
        response = self.request(method, url, **kwargs)
        response.raise_for_status()
        return response.json()

    def _signed_in_or_step(self, response: httpx.Response) -> dict | MfaStep:
        """A login's answer: keep the tokens and return the user, or return the second step."""
        response.raise_for_status()
        body = response.json()
        if body.get("mfa_required"):
            return MfaStep(token=body["mfa_token"], methods=tuple(body["methods"]))
        with self._lock:
            self._access = body["access"]
            self.store.save(body["refresh"])
        return body["user"]

    # --- refresh, once per expiry -----------------------------------------------------------
    def _refresh_after(self, refused: str | None) -> str:
        """A fresh access token. Threads that were refused the same token wait for one refresh: the
        first refreshes, the rest find the new token when they get the lock."""
        with self._lock:
            if self._access and self._access != refused:
                return self._access  # another thread refreshed while this one waited
            refresh = self.store.load()
            if not refresh:
                raise SignedOut()
            response = self.http.post("/api/auth/refresh/", json={"refresh": refresh})
            if response.status_code != 401:
                response.raise_for_status()
                body = response.json()
                self.store.save(body["refresh"])  # the old one is dead: rotation
                self._access = body["access"]
                return self._access
            self._access = None
            self.store.save(None)
        code = _code(response) or "not_authenticated"
        self._notify(code)  # outside the lock: the callback may use the client
        raise SignedOut(code)

    def _forget(self, reason: str) -> None:
        with self._lock:
            self._access = None
            self.store.save(None)
        self._notify(reason)

    def _notify(self, reason: str) -> None:
        if self.on_logout is not None:
            self.on_logout(reason)


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json().get("code")
    except ValueError:
        return None
