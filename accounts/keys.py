"""The keys that sign and verify tokens, read once per process, and the JWKS that publishes them.

Under HMAC (HS256, the default) one secret (simplejwt's ``SIGNING_KEY``, ``SECRET_KEY`` unless set)
signs and verifies, and nothing is published; when that secret is ``SECRET_KEY``, a token that it
does not verify is tried with each of Django's ``SECRET_KEY_FALLBACKS`` in turn, as Django's own
signing does, so that rotating the secret key signs nobody out. Under RS256 or ES256 the PEM files of
``ACCOUNTS_JWT_SIGNING_KEYS`` and ``ACCOUNTS_JWT_VERIFY_KEYS`` make a key set: the first signing key
signs, every key verifies and is published at ``/.well-known/jwks.json``, each named by its RFC 7638
thumbprint, which every token names in its ``kid`` header. Verification picks the key by ``kid``,
so tokens signed by an earlier key keep working while that key is listed (rotation signs nobody out).

Files are read when a configuration is first used and kept per configuration (the settings' values
are the cache key), so a process reads them once and tests that change the settings get new keys;
the backend made from them is looked up once until the settings change.
"""

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm as CryptographyUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenBackendExpiredToken

from .conf import app_settings, jwt_settings

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
MIN_RSA_BITS = 2048  # RFC 7518 section 3.3: "A key of size 2048 bits or larger MUST be used"
GENERATED_RSA_BITS = 3072  # NIST SP 800-57: 128-bit security, like ES256's P-256
# RFC 7638 section 3.2: the thumbprint hashes exactly the required members of each key type.
THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


# --- Configuration errors (accounts.checks gives each its check id) ---------------------------
class KeyConfigurationError(ImproperlyConfigured):
    """A key setting that cannot work; ``hint`` says what to change."""

    hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class UnsupportedAlgorithm(KeyConfigurationError):
    hint = f"Set SIMPLE_JWT['ALGORITHM'] to one of {', '.join(HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS)}."


class NoSigningKey(KeyConfigurationError):
    hint = (
        "List PEM private-key files in ACCOUNTS_JWT_SIGNING_KEYS (manage.py generate_signing_key makes one)."
    )


class KeysWithoutAlgorithm(KeyConfigurationError):
    hint = "Set SIMPLE_JWT['ALGORITHM'] to RS256 or ES256 to use them, or remove them."


class UnreadableKey(KeyConfigurationError):
    hint = "Name a readable PEM file (unencrypted PKCS#8 or traditional private key, or a public key)."


class WrongKeyType(KeyConfigurationError):
    pass


class WeakKey(KeyConfigurationError):
    hint = "Generate a new key: manage.py generate_signing_key --algorithm RS256 --out FILE (3072 bits)."


class PrivateVerifyKey(KeyConfigurationError):
    hint = (
        "List its public half instead (openssl pkey -in FILE -pubout -out FILE.pub), or move it to "
        "ACCOUNTS_JWT_SIGNING_KEYS after the key that signs."
    )


# --- Keys ---------------------------------------------------------------------------------------
def _b64url_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def public_jwk(public_key, algorithm: str) -> dict[str, str]:
    """The key's public parameters as a JWK (RFC 7517) with ``kid``, ``alg`` and ``use``."""
    to_jwk = RSAAlgorithm.to_jwk if algorithm.startswith("RS") else ECAlgorithm.to_jwk
    params = to_jwk(public_key, as_dict=True)
    members = {name: params[name] for name in THUMBPRINT_MEMBERS[params["kty"]]}
    return {**members, "kid": thumbprint(members), "alg": algorithm, "use": "sig"}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 of the required members, sorted, without whitespace."""
    required = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    return _b64url_sha256(json.dumps(required, sort_keys=True, separators=(",", ":")).encode())


def read_pem(path: str):
    """The private or public key in a PEM file; UnreadableKey if it cannot be read as one."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UnreadableKey(f"The key file {path!r} cannot be read: {e.strerror or e}.") from e
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as e:  # cryptography's word for "encrypted, and no password given"
        raise UnreadableKey(f"The key file {path!r} is encrypted.") from e
    except (ValueError, CryptographyUnsupported):
        pass  # not a private key (of a type cryptography knows): perhaps a public one
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, CryptographyUnsupported) as e:
        raise UnreadableKey(f"The key file {path!r} holds no PEM key.") from e


def check_key_type(key, *, algorithm: str, path: str) -> None:
    """Raise WrongKeyType or WeakKey unless ``key`` suits ``algorithm``."""
    if algorithm == "RS256":
        if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            raise WrongKeyType(
                f"The key in {path!r} is not an RSA key, which RS256 needs.", _type_hint(algorithm)
            )
        if key.key_size < MIN_RSA_BITS:
            raise WeakKey(f"The RSA key in {path!r} has {key.key_size} bits, fewer than {MIN_RSA_BITS}.")
    elif not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise WrongKeyType(
            f"The key in {path!r} is not an EC P-256 key, which ES256 needs.", _type_hint(algorithm)
        )


def _type_hint(algorithm: str) -> str:
    return (
        f"List keys made for {algorithm} (manage.py generate_signing_key --algorithm {algorithm}), "
        "or set SIMPLE_JWT['ALGORITHM'] to the keys' algorithm."
    )


@dataclass(frozen=True)
class KeyConfig:
    """The settings a key set is made from; equal settings share one key set."""

    algorithm: str
    hmac_key: str | None
    signing_files: tuple[str, ...]
    verify_files: tuple[str, ...]
    hmac_fallbacks: tuple[str, ...] = ()

    @classmethod
    def current(cls) -> "KeyConfig":
        """The configuration the settings hold now."""
        hmac_key = jwt_settings().SIGNING_KEY
        return cls(
            algorithm=app_settings.ALGORITHM,
            hmac_key=hmac_key,
            signing_files=tuple(app_settings.JWT_SIGNING_KEYS),
            verify_files=tuple(app_settings.JWT_VERIFY_KEYS),
            hmac_fallbacks=hmac_fallback_keys(hmac_key),
        )

    @property
    def is_hmac(self) -> bool:
        return self.algorithm in HMAC_ALGORITHMS

    def errors(self) -> list[KeyConfigurationError]:
        """Every problem of this configuration (empty if a key set can be made from it)."""
        if self.algorithm not in HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS:
            return [UnsupportedAlgorithm(f"The JWT algorithm {self.algorithm!r} is not supported.")]
        if self.is_hmac:
            named = self.signing_files + self.verify_files
            if named:
                return [
                    KeysWithoutAlgorithm(
                        f"Key files are listed ({', '.join(named)}) but tokens are signed with "
                        f"{self.algorithm} and the secret key, so they would be ignored."
                    )
                ]
            return []
        errors: list[KeyConfigurationError] = []
        if not self.signing_files:
            errors.append(NoSigningKey(f"{self.algorithm} needs a private key to sign with; none is listed."))
        for path, signing in self._files():
            try:
                self._load(path, signing=signing)
            except KeyConfigurationError as e:
                errors.append(e)
        return errors

    def _files(self) -> Iterable[tuple[str, bool]]:
        yield from ((path, True) for path in self.signing_files)
        yield from ((path, False) for path in self.verify_files)

    def _load(self, path: str, *, signing: bool):
        key = read_pem(path)
        check_key_type(key, algorithm=self.algorithm, path=path)
        is_private = hasattr(key, "private_bytes")
        if signing and not is_private:
            raise WrongKeyType(
                f"The key in {path!r} is a public key: it cannot sign.",
                "List its private key in ACCOUNTS_JWT_SIGNING_KEYS, "
                "or move this file to ACCOUNTS_JWT_VERIFY_KEYS.",
            )
        if not signing and is_private:
            raise PrivateVerifyKey(
                f"The key in {path!r} is listed to verify only but is a private key, "
                "which does not belong beside the keys that never sign."
            )
        return key

    def load(self) -> "KeySet":
        """The key set, read from the files; the first problem found is raised."""
        if errors := self.errors():
            raise errors[0]
        if self.is_hmac:
            return KeySet(
                algorithm=self.algorithm,
                signing_key=self.hmac_key,
                kid=None,
                public_keys={},
                jwks=[],
                fallback_keys=self.hmac_fallbacks,
            )
        public_keys, jwks = {}, []
        signing_key = signing_kid = None
        for path, signing in self._files():
            key = self._load(path, signing=signing)
            public = key.public_key() if signing else key
            jwk = public_jwk(public, self.algorithm)
            if signing_key is None:
                signing_key, signing_kid = key, jwk["kid"]
            if jwk["kid"] not in public_keys:  # the same key listed twice is published once
                public_keys[jwk["kid"]] = public
                jwks.append(jwk)
        return KeySet(
            algorithm=self.algorithm,
            signing_key=signing_key,
            kid=signing_kid,
            public_keys=public_keys,
            jwks=jwks,
        )


@dataclass(frozen=True, eq=False)
class KeySet:
    """The key that signs (and its ``kid``), the public keys that verify by ``kid``, and the JWKS."""

    algorithm: str
    signing_key: Any
    kid: str | None
    public_keys: dict[str, Any]
    jwks: list[dict[str, str]]
    # HMAC only: earlier secrets that still verify (never sign), tried after the signing key.
    fallback_keys: tuple[str, ...] = ()

    def verifying_key(self, token: str | bytes):
        """The key that verifies ``token``: the one its ``kid`` header names (under HMAC, the secret)."""
        if self.kid is None:
            return self.signing_key
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as e:
            raise TokenBackendError(_("Token is invalid")) from e
        key = self.public_keys.get(kid) if isinstance(kid, str) else None
        if key is None:  # no kid, or a key that is not (or no longer) listed
            raise TokenBackendError("Token is signed by an unknown key")
        return key


@lru_cache(maxsize=16)
def _key_set(config: KeyConfig) -> KeySet:
    return config.load()


def key_set() -> KeySet:
    """The key set of the current settings, read once per process and configuration."""
    return _key_set(KeyConfig.current())


def jwks() -> dict[str, list[dict[str, str]]]:
    """The JSON Web Key Set to publish: public parameters only, ``{"keys": []}`` under HMAC."""
    return {"keys": key_set().jwks}


class HMACKeyCheckedOnce(HMACAlgorithm):
    """PyJWT's HMAC algorithm, checking a key once instead of on every token.

    Before it signs or verifies, PyJWT checks that an HMAC secret is no PEM, SSH or DER key,
    certificate or JWK (an algorithm-confusion guard), which costs more than the HMAC itself, three
    times per refresh (measured: ~0.38 ms of a cookie refresh's CPU, benchmarks/RESULTS.md). A key
    passes or fails that check the same way every time, so the answer is kept per key; a key that
    fails raises every time (exceptions are not cached). Registered only on this app's own PyJWT
    instance (``APP_JWT``): how the rest of the process signs and verifies is left as it was."""

    @lru_cache(maxsize=8)  # noqa: B019 (the instances live as long as the process)
    def _checked(self, key: str | bytes) -> bytes:
        return super().prepare_key(key)

    def prepare_key(self, key: str | bytes) -> bytes:
        if isinstance(key, str | bytes):
            return self._checked(key)
        return super().prepare_key(key)


def _app_jwt() -> jwt.PyJWT:
    """A PyJWT of this app's own, its HMAC algorithms checking each key once.

    PyJWT's ``register_algorithm`` is public on a PyJWS, but a PyJWT keeps the PyJWS it signs and
    verifies with in ``_jws``, which it documents nowhere: this is the one place that reads it.
    Canary: tests/test_canaries.py::test_pyjwt_instances_sign_and_verify_through_their_own_jws."""
    instance = jwt.PyJWT()
    digests = (HMACAlgorithm.SHA256, HMACAlgorithm.SHA384, HMACAlgorithm.SHA512)
    for name, digest in zip(HMAC_ALGORITHMS, digests, strict=True):
        instance._jws.unregister_algorithm(name)
        instance._jws.register_algorithm(name, HMACKeyCheckedOnce(digest))
    return instance


APP_JWT = _app_jwt()


class KeySetTokenBackend(TokenBackend):
    """simplejwt's TokenBackend on a key set: signs with the signing key, naming it in the ``kid``
    header, and verifies with the listed key that the token's ``kid`` names."""

    def __init__(self, keys: KeySet, **options):
        super().__init__(keys.algorithm, **options)
        self.keys = keys

    @cached_property
    def prepared_signing_key(self) -> Any:
        return self.keys.signing_key

    def get_verifying_key(self, token) -> Any:
        """The key the token's ``kid`` names; TokenBackendError (token_not_valid) if none is listed."""
        return self.keys.verifying_key(token)

    def encode(self, payload: dict[str, Any]) -> str:
        """simplejwt's encode, with the signing key's ``kid`` in the header."""
        jwt_payload = payload.copy()
        if self.audience is not None:
            jwt_payload["aud"] = self.audience
        if self.issuer is not None:
            jwt_payload["iss"] = self.issuer
        headers = None if self.keys.kid is None else {"kid": self.keys.kid}
        return APP_JWT.encode(
            jwt_payload,
            self.prepared_signing_key,
            algorithm=self.algorithm,
            headers=headers,
            json_encoder=self.json_encoder,
        )

    def decode(self, token, verify: bool = True) -> dict[str, Any]:
        """simplejwt's decode (the same checks, the same errors), through this app's PyJWT; under
        HMAC, a signature the signing key does not verify is tried with each fallback key."""
        try:
            try:
                return self._decode(token, self.get_verifying_key(token), verify=verify)
            except jwt.InvalidSignatureError:
                if not verify or not self.keys.fallback_keys:
                    raise
            return self._decode_with_fallbacks(token)
        except jwt.InvalidAlgorithmError as e:
            raise TokenBackendError(_("Invalid algorithm specified")) from e
        except jwt.ExpiredSignatureError as e:
            raise TokenBackendExpiredToken(_("Token is expired")) from e
        except jwt.InvalidTokenError as e:
            raise TokenBackendError(_("Token is invalid")) from e

    def _decode(self, token, key, *, verify: bool = True) -> dict[str, Any]:
        return APP_JWT.decode(
            token,
            key,
            algorithms=[self.algorithm],
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.get_leeway(),
            options={"verify_aud": self.audience is not None, "verify_signature": verify},
        )

    def _decode_with_fallbacks(self, token) -> dict[str, Any]:
        """The claims of a token signed with one of the fallback keys (the first that verifies
        it); InvalidSignatureError when none does."""
        for key in self.keys.fallback_keys[:-1]:
            try:
                return self._decode(token, key)
            except jwt.InvalidSignatureError:
                continue
        return self._decode(token, self.keys.fallback_keys[-1])


def hmac_fallback_keys(hmac_key: str | None) -> tuple[str, ...]:
    """The secrets that verify HMAC tokens after ``hmac_key``: Django's ``SECRET_KEY_FALLBACKS``
    when ``hmac_key`` is ``SECRET_KEY`` (they are that key's predecessors), else none (a signing key
    of its own, in ``SIMPLE_JWT``, has no fallbacks)."""
    if hmac_key is None or hmac_key != settings.SECRET_KEY:
        return ()
    return tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()))


@lru_cache(maxsize=16)
def _token_backend(config: KeyConfig, audience, issuer, leeway, json_encoder) -> KeySetTokenBackend:
    return KeySetTokenBackend(
        _key_set(config), audience=audience, issuer=issuer, leeway=leeway, json_encoder=json_encoder
    )


@cache
def token_backend() -> KeySetTokenBackend:
    """The backend that signs and verifies this app's tokens under the current settings: looked up
    once, not on every token, and again after the settings change (``setting_changed``, as tests
    and ``override_settings`` send it)."""
    audience = app_settings.AUDIENCE
    if audience is not None and not isinstance(audience, str):
        audience = tuple(audience)  # a list of audiences, hashable for the cache
    leeway = jwt_settings().LEEWAY
    return _token_backend(
        KeyConfig.current(), audience, app_settings.ISSUER, leeway, jwt_settings().JSON_ENCODER
    )


@receiver(setting_changed)
def _forget_token_backend(**kwargs) -> None:
    token_backend.cache_clear()


def signing_key_generate(*, algorithm: str) -> bytes:
    """A new private key for ``algorithm`` (ES256: P-256; RS256: 3072 bits) as unencrypted PKCS#8 PEM."""
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_RSA_BITS)
    else:
        raise UnsupportedAlgorithm(f"Cannot generate a key for {algorithm!r}.", "Use ES256 or RS256.")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def kid_of(pem: bytes, algorithm: str) -> str:
    """The ``kid`` a PEM private key gets in the JWKS (its RFC 7638 thumbprint)."""
    return public_jwk(serialization.load_pem_private_key(pem, password=None).public_key(), algorithm)["kid"]
