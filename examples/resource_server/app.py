"""A resource server that is not authproject: it verifies authproject's access tokens from the JWKS
alone, with plain PyJWT and no secret. Any other service can do the same in a few lines.

    pip install "PyJWT[crypto]"
    python app.py --jwks-url https://auth.example.com/.well-known/jwks.json --port 8001 \\
        [--issuer https://auth.example.com] [--audience https://api.example.com]

GET /whoami with ``Authorization: Bearer <access token>`` answers 200 ``{"user_id", "session_id"}``;
a missing, forged, expired or non-access token answers 401. Revocation is not seen here: a revoked
session's access token stays valid until its ``exp`` (15 minutes by default), as for any JWT checked
offline; ask authproject (``GET /api/users/me/``) where that matters.
"""

import argparse
import json
from wsgiref.simple_server import WSGIRequestHandler, make_server

import jwt


def make_verifier(jwks_url: str, *, issuer: str | None = None, audience: str | None = None):
    """A function that returns a token's claims, or raises jwt.PyJWTError."""
    # Caches the key set for 5 minutes, and fetches it again when a token names an unknown kid
    # (a key published since), so key rotation needs nothing from this service.
    jwks = jwt.PyJWKClient(jwks_url, lifespan=300)

    def verify(token: str) -> dict:
        key = jwks.get_signing_key_from_jwt(token)  # the published key the token's "kid" names
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],  # the key's own "alg": never what the token says
            issuer=issuer,
            audience=audience,
            options={"require": ["exp"], "verify_aud": audience is not None},
        )
        # The refresh token is signed by the same key: only an access token grants access.
        if claims.get("token_type") != "access":
            raise jwt.InvalidTokenError("Not an access token.")
        return claims

    return verify


def make_app(verify):
    """A WSGI application with one endpoint, GET /whoami."""

    def app(environ, start_response):
        def answer(status: str, body: dict, *headers):
            data = json.dumps(body).encode()
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers]
            )
            return [data]

        if environ["PATH_INFO"] != "/whoami":
            return answer("404 Not Found", {"detail": "Not found."})
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme != "Bearer" or not token:
            return answer(
                "401 Unauthorized", {"detail": "Bearer token required."}, ("WWW-Authenticate", "Bearer")
            )
        try:
            claims = verify(token)
        except jwt.PyJWKClientConnectionError:
            return answer("503 Service Unavailable", {"detail": "The key set cannot be fetched."})
        except jwt.PyJWTError as e:  # bad signature, unknown kid, expired, wrong iss/aud/type ...
            return answer(
                "401 Unauthorized", {"detail": f"Invalid token: {e}"}, ("WWW-Authenticate", "Bearer")
            )
        return answer("200 OK", {"user_id": claims["user_id"], "session_id": claims["sid"]})

    return app


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args):  # no access log: the request line could carry a token one day
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jwks-url", required=True)
    parser.add_argument("--issuer")
    parser.add_argument("--audience")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    app = make_app(make_verifier(args.jwks_url, issuer=args.issuer, audience=args.audience))
    with make_server(args.host, args.port, app, handler_class=QuietHandler) as server:
        print(f"Verifying tokens on http://{args.host}:{args.port}/whoami", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
