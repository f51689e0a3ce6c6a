"""A software authenticator for the tests: real P-256 keys and real signatures, so that py_webauthn
verifies what the server is sent exactly as it verifies a browser's.

It answers the JSON forms of the options (WebAuthn Level 3, what ``options_to_json`` gives) with the
JSON forms of the credentials (``PublicKeyCredential.toJSON()``), the way a browser's
``navigator.credentials.create()`` and ``get()`` would: a ``none`` attestation (CBOR, with
authenticator data that carries the credential's COSE public key), and assertions signed over the
authenticator data and the hash of the client data, with a signature counter. Each argument that
a browser or an authenticator would decide (the origin, the RP ID, the user-verified flag, the
counter) can be set otherwise, to play a phishing page, a cloned authenticator or a careless one.
"""

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "http://localhost:5173"  # one of the test settings' CORS origins
RP_ID = "localhost"

# Authenticator data flags (WebAuthn section 6.1).
USER_PRESENT, USER_VERIFIED, BACKUP_ELIGIBLE, BACKED_UP, ATTESTED = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes.fromhex("0123456789abcdef0123456789abcdef")


def b64url(data: bytes) -> str:
    """base64url without padding, as WebAuthn's JSON forms write bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """One key pair the authenticator holds for one account of one RP."""

    id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        """The public key as a COSE_Key (RFC 9053: EC2, ES256, P-256)."""
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )


@dataclass
class SoftAuthenticator:
    """A platform authenticator that keeps its credentials in memory. ``counts``: False for one
    that never counts (its counter stays 0, as synced passkeys' do)."""

    origin: str = ORIGIN
    counts: bool = True
    credentials: dict[bytes, Credential] = field(default_factory=dict)

    def create(
        self,
        options: dict,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        challenge: str | None = None,
        credential_id: bytes | None = None,
    ) -> dict:
        """``navigator.credentials.create()``: a new credential for the options' RP and user
        (``credential_id``: with that id, as a hostile authenticator may choose)."""
        rp_id = rp_id or options["rp"]["id"]
        credential = Credential(
            id=credential_id or secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=b64url_decode(options["user"]["id"]),
        )
        self.credentials[credential.id] = credential
        client_data = self._client_data(
            "webauthn.create", challenge or options["challenge"], origin or self.origin
        )
        attested = (
            AAGUID + struct.pack(">H", len(credential.id)) + credential.id + credential.cose_public_key()
        )
        flags = ATTESTED | USER_PRESENT | (USER_VERIFIED if user_verified else 0)
        auth_data = self._authenticator_data(rp_id, flags, credential.sign_count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
        }

    def get(
        self,
        options: dict,
        *,
        credential_id: str | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        sign_count: int | None = None,
        challenge: str | None = None,
    ) -> dict:
        """``navigator.credentials.get()``: an assertion by ``credential_id`` (else the only
        credential for the options' RP, or the first one allowCredentials names). Its counter
        goes up by one if the authenticator counts; ``sign_count`` sends this value instead."""
        credential = self._choose(options, credential_id)
        if sign_count is not None:
            credential.sign_count = sign_count
        elif self.counts:
            credential.sign_count += 1
        client_data = self._client_data(
            "webauthn.get", challenge or options["challenge"], origin or self.origin
        )
        flags = USER_PRESENT | (USER_VERIFIED if user_verified else 0)
        auth_data = self._authenticator_data(rp_id or credential.rp_id, flags, credential.sign_count)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
        }

    def _choose(self, options: dict, credential_id: str | None) -> Credential:
        if credential_id is not None:
            return self.credentials[b64url_decode(credential_id)]
        allowed = [b64url_decode(each["id"]) for each in options.get("allowCredentials", [])]
        mine = [c for c in self.credentials.values() if not allowed or c.id in allowed]
        if not mine:
            raise LookupError("no credential of this authenticator fits the options")
        return mine[0]

    @staticmethod
    def _client_data(type_: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": type_, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    @staticmethod
    def _authenticator_data(rp_id: str, flags: int, sign_count: int) -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)
