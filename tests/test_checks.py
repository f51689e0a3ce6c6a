"""Startup checks refuse unsafe configuration, both as functions and through manage.py check."""

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

from accounts import checks
from accounts.conf import app_settings
from authproject.settings import DEFAULT_CORS_ORIGINS, DEVELOPMENT_SECRET_KEY

from .helpers import manage_py, public_half

BASE_DIR = Path(__file__).resolve().parent.parent
LONG_SECRET = "a-long-random-production-secret-key-" + "x" * 40
ACCOUNTS_CHECKS = [
    checks.check_cors_credentials,
    checks.check_refresh_cookie,
    checks.check_refresh_cookie_host_prefix,
    checks.check_native_app_origins,
    checks.check_secret_key,
    checks.check_signing_key,
    checks.check_unknown_settings,
    checks.check_renamed_settings,
    checks.check_jwt_keys,
    checks.check_mail_configured,
    checks.check_metrics_token,
    checks.check_password_check_niceness,
    checks.check_password_set_ends_sessions,
    checks.check_secret_key_fallbacks,
    checks.check_throttle_rates,
    checks.check_mfa_encryption_keys,
    checks.check_webauthn_rp_id,
]


def error_ids() -> list[str]:
    """The ids of the serious messages every accounts check returns now."""
    return [m.id for check in ACCOUNTS_CHECKS for m in check(app_configs=None) if m.is_serious()]


@pytest.fixture
def safe(settings):
    """The production defaults with a long secret: every test below changes one thing."""
    settings.DEBUG = False
    settings.SECRET_KEY = LONG_SECRET
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": LONG_SECRET, "ALGORITHM": "HS256"}
    settings.CORS_ALLOWED_ORIGINS = list(DEFAULT_CORS_ORIGINS)
    settings.CSRF_TRUSTED_ORIGINS = list(DEFAULT_CORS_ORIGINS)
    settings.CORS_ALLOW_CREDENTIALS = True
    settings.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "Lax"
    settings.ACCOUNTS_REFRESH_COOKIE_SECURE = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    return settings


def test_the_safe_default_configuration_has_no_errors(safe):
    assert error_ids() == []
    checks.refuse_unsafe_configuration()  # does not raise


# --- E001: credentialed CORS for every origin -----------------------------------------------
def test_allow_all_origins_with_credentials_is_e001(safe):
    safe.CORS_ALLOW_ALL_ORIGINS = True
    assert error_ids() == ["accounts.E001"]


def test_a_wildcard_in_the_allowed_origins_is_e001(safe):
    safe.CORS_ALLOWED_ORIGINS = [*DEFAULT_CORS_ORIGINS, "*"]
    assert error_ids() == ["accounts.E001"]


def test_allow_all_origins_without_credentials_is_allowed(safe):
    safe.CORS_ALLOW_ALL_ORIGINS = True
    safe.CORS_ALLOW_CREDENTIALS = False
    assert error_ids() == []


@pytest.mark.django_db
def test_the_legacy_allow_all_setting_with_credentials_is_e001(safe, client):
    """django-cors-headers still honours CORS_ORIGIN_ALLOW_ALL, the old name of the setting."""
    assert not hasattr(safe, "CORS_ALLOW_ALL_ORIGINS")  # settings.py leaves the new name unset
    safe.CORS_ORIGIN_ALLOW_ALL = True
    response = client.get("/api/auth/csrf/", HTTP_ORIGIN="http://evil.example")
    # Any site may now read credentialed responses...
    assert response["access-control-allow-origin"] == "http://evil.example"
    assert response["access-control-allow-credentials"] == "true"
    # ...so the startup check must refuse it.
    assert error_ids() == ["accounts.E001"]


# --- E002, E003: the refresh cookie's SameSite ----------------------------------------------
@pytest.mark.parametrize("samesite", ["Lax", "Strict"])
def test_lax_and_strict_pass(safe, samesite):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = samesite
    assert error_ids() == []


def test_samesite_none_with_secure_passes(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    assert error_ids() == []


def test_samesite_none_without_secure_is_e003(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    safe.ACCOUNTS_REFRESH_COOKIE_SECURE = False
    assert error_ids() == ["accounts.E003"]


def test_a_partitioned_cookie_with_samesite_none_and_secure_passes(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    safe.ACCOUNTS_REFRESH_COOKIE_PARTITIONED = True
    assert error_ids() == []


@pytest.mark.parametrize("samesite", ["Lax", "Strict"])
def test_a_partitioned_cookie_without_samesite_none_is_e006(safe, samesite):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = samesite
    safe.ACCOUNTS_REFRESH_COOKIE_PARTITIONED = True
    assert error_ids() == ["accounts.E006"]


def test_a_host_prefixed_cookie_that_is_secure_and_host_only_passes(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX = True
    assert error_ids() == []


def test_a_host_prefixed_cookie_without_secure_is_e030(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX = True
    safe.ACCOUNTS_REFRESH_COOKIE_SECURE = False
    assert error_ids() == ["accounts.E030"]


def test_a_host_prefixed_cookie_with_a_domain_is_e031(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX = True
    safe.ACCOUNTS_REFRESH_COOKIE_DOMAIN = "example.com"
    assert error_ids() == ["accounts.E031"]


@pytest.mark.parametrize("samesite", ["Sometimes", "", "Lax; Secure"])
def test_an_unknown_samesite_value_is_e002(safe, samesite):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = samesite
    assert error_ids() == ["accounts.E002"]


# --- E004: the development key outside DEBUG ------------------------------------------------
def test_the_development_key_with_debug_off_is_e004(safe):
    safe.SECRET_KEY = DEVELOPMENT_SECRET_KEY
    assert [m.id for m in checks.check_secret_key(app_configs=None)] == ["accounts.E004"]


def test_any_key_with_djangos_insecure_prefix_with_debug_off_is_e004(safe):
    """Not only this project's development key: any key marked as one by Django's convention."""
    safe.SECRET_KEY = "django-insecure-" + "x" * 50
    assert [m.id for m in checks.check_secret_key(app_configs=None)] == ["accounts.E004"]


def test_the_development_key_with_debug_on_passes(safe):
    safe.SECRET_KEY = DEVELOPMENT_SECRET_KEY
    safe.DEBUG = True
    assert checks.check_secret_key(app_configs=None) == []


# --- E016, E017: native app origins ------------------------------------------------------------
@pytest.mark.parametrize(
    "origins",
    [
        ["capacitor://localhost", "ionic://localhost", "https://localhost", "http://localhost"],
        ["http://localhost:8100", "capacitor://localhost/"],
    ],
)
def test_hybrid_app_origins_pass(safe, origins):
    safe.ACCOUNTS_NATIVE_APP_ORIGINS = origins
    assert error_ids() == []


@pytest.mark.parametrize("trusted", ["http://localhost:5173", "http://localhost:5173/"])
def test_an_origin_both_a_browsers_and_an_apps_is_e016(safe, trusted):
    safe.CSRF_TRUSTED_ORIGINS = [*DEFAULT_CORS_ORIGINS, trusted]
    safe.ACCOUNTS_NATIVE_APP_ORIGINS = ["capacitor://localhost", "http://localhost:5173"]
    [error] = checks.check_native_app_origins(app_configs=None)
    assert error.id == "accounts.E016" and "'http://localhost:5173'" in error.msg


@pytest.mark.parametrize(
    "origin", ["https://app.example.com", "http://127.0.0.1", "https://localhost.example.com", "null", "*"]
)
def test_a_web_origin_or_no_origin_among_the_native_ones_is_e017(safe, origin):
    safe.ACCOUNTS_NATIVE_APP_ORIGINS = ["capacitor://localhost", origin]
    assert error_ids() == ["accounts.E017"]


# --- E040: a short METRICS_TOKEN --------------------------------------------------------------
def test_a_metrics_token_shorter_than_32_characters_is_e040(safe):
    safe.ACCOUNTS_METRICS_TOKEN = "k" * 31
    assert error_ids() == ["accounts.E040"]


@pytest.mark.parametrize("token", [None, "", "k" * 32])
def test_no_metrics_token_or_a_long_one_passes(safe, token):
    safe.ACCOUNTS_METRICS_TOKEN = token
    assert error_ids() == []


# --- E048: PASSWORD_CHECK_NICENESS outside 0 to 19 ----------------------------------------------
@pytest.mark.parametrize("niceness", [-1, 20, "10"])
def test_a_password_check_niceness_outside_0_to_19_is_e048(safe, niceness):
    safe.ACCOUNTS_PASSWORD_CHECK_NICENESS = niceness
    assert error_ids() == ["accounts.E048"]


@pytest.mark.parametrize("niceness", [0, 10, 19])
def test_a_password_check_niceness_from_0_to_19_passes(safe, niceness):
    safe.ACCOUNTS_PASSWORD_CHECK_NICENESS = niceness
    assert error_ids() == []


# --- E005: a short HMAC signing key ---------------------------------------------------------
def test_a_signing_key_shorter_than_32_bytes_is_e005(safe):
    safe.SIMPLE_JWT = {**safe.SIMPLE_JWT, "SIGNING_KEY": "short"}
    assert error_ids() == ["accounts.E005"]


def test_a_signing_key_of_32_bytes_passes(safe):
    safe.SIMPLE_JWT = {**safe.SIMPLE_JWT, "SIGNING_KEY": "k" * 32}
    assert error_ids() == []


# --- E018: DEBUG off without a mail server -----------------------------------------------------
def test_manage_check_refuses_debug_off_without_email_url():
    result = manage_py(
        "check", unset=("DJANGO_DEBUG", "EMAIL_URL"), DJANGO_DEBUG="0", DJANGO_SECRET_KEY=LONG_SECRET
    )
    assert result.returncode != 0
    assert "accounts.E018" in result.stderr and "EMAIL_URL" in result.stderr


def test_manage_check_needs_no_email_url_with_debug_on():
    """Mail goes to the console then."""
    result = manage_py("check", unset=("DJANGO_DEBUG", "EMAIL_URL"), DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "accounts.E018" not in result.stdout + result.stderr


@pytest.mark.parametrize("url", ["smtp://mail.example.com:25", "consolemail://"])
def test_manage_check_passes_debug_off_with_email_url(url):
    result = manage_check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=LONG_SECRET, EMAIL_URL=url)
    assert result.returncode == 0, result.stderr


# --- E007, E008: unknown and renamed settings ------------------------------------------------
def test_the_known_settings_are_the_app_settings_without_simple_jwts_own():
    """Derived from AppSettings' properties; lifetimes, algorithm, issuer and audience are read
    from SIMPLE_JWT instead."""
    assert checks.setting_names() == [
        "ACCESS_TOKEN_CHECKS_SESSION",
        "AUDIT_RETENTION",
        "EMAIL_VERIFICATION",
        "EMAIL_VERIFY_KEY_THROTTLE_RATE",
        "EMAIL_VERIFY_THROTTLE_RATE",
        "EMAIL_VERIFY_TIMEOUT",
        "EMAIL_VERIFY_URL",
        "JWKS_MAX_AGE",
        "JWT_SIGNING_KEYS",
        "JWT_VERIFY_KEYS",
        "LOGIN_GLOBAL_THROTTLE_RATE",
        "LOGIN_IP_THROTTLE_RATE",
        "LOGIN_THROTTLE_RATE",
        "LOGIN_USERNAME_THROTTLE_RATE",
        "MAIL_MAX_ATTEMPTS",
        "MAIL_RETRY_BACKOFF",
        "METRICS_TOKEN",
        "MFA_ENCRYPTION_KEYS",
        "MFA_THROTTLE_RATE",
        "MFA_TOKEN_TIMEOUT",
        "NATIVE_APP_ORIGINS",
        "PASSWORD_CHANGE_THROTTLE_RATE",
        "PASSWORD_CHECK_NICENESS",
        "PASSWORD_CHECK_SLOTS",
        "PASSWORD_CHECK_SLOT_DIR",
        "PASSWORD_RESET_CONFIRM_THROTTLE_RATE",
        "PASSWORD_RESET_THROTTLE_RATE",
        "PASSWORD_RESET_TIMEOUT",
        "PASSWORD_RESET_URL",
        "REAUTHENTICATION_TIMEOUT",
        "REFRESH_BODY_TRANSPORT",
        "REFRESH_COOKIE_DOMAIN",
        "REFRESH_COOKIE_HOST_PREFIX",
        "REFRESH_COOKIE_NAME",
        "REFRESH_COOKIE_PARTITIONED",
        "REFRESH_COOKIE_PATH",
        "REFRESH_COOKIE_SAMESITE",
        "REFRESH_COOKIE_SECURE",
        "REFRESH_GRACE",
        "REGISTER_THROTTLE_RATE",
        "SECURITY_NOTICES",
        "SESSION_MAX_AGE",
        "SESSION_RETENTION",
        "SITE_NAME",
        "WEBAUTHN_CHALLENGE_TIMEOUT",
        "WEBAUTHN_ORIGINS",
        "WEBAUTHN_RP_ID",
        "WEBAUTHN_RP_NAME",
        "WORKER_METRICS_HOST",
        "WORKER_METRICS_PORT",
    ]


def test_every_known_setting_passes(safe):
    for name in checks.setting_names():
        setattr(safe, f"ACCOUNTS_{name}", getattr(app_settings, name))
    assert error_ids() == []


def test_a_misspelled_setting_is_e007_and_the_hint_names_the_closest_one(safe):
    safe.ACCOUNTS_REFRESH_GRAVE = timedelta(seconds=30)

    [error] = checks.check_unknown_settings(app_configs=None)

    assert error.id == "accounts.E007"
    assert "ACCOUNTS_REFRESH_GRAVE" in error.msg
    assert error.hint == "Did you mean ACCOUNTS_REFRESH_GRACE?"


def test_each_unknown_setting_is_its_own_e007(safe):
    safe.ACCOUNTS_SESSION_MAXAGE = timedelta(hours=1)
    safe.ACCOUNTS_LOGIN_THROTTLE = "1/min"
    assert error_ids() == ["accounts.E007", "accounts.E007"]
    hints = {e.hint for e in checks.check_unknown_settings(app_configs=None)}
    assert hints == {"Did you mean ACCOUNTS_SESSION_MAX_AGE?", "Did you mean ACCOUNTS_LOGIN_THROTTLE_RATE?"}


def test_an_unknown_setting_with_no_close_match_is_e007_and_the_hint_lists_the_known_ones(safe):
    safe.ACCOUNTS_XYZZY = 1
    [error] = checks.check_unknown_settings(app_configs=None)
    assert error.id == "accounts.E007"
    assert "ACCOUNTS_REFRESH_GRACE" in error.hint


@pytest.mark.parametrize("name", ["ACCESS_TOKEN_LIFETIME", "REFRESH_TOKEN_LIFETIME", "ALGORITHM", "ISSUER"])
def test_a_token_lifetime_under_the_accounts_prefix_is_e007_pointing_to_simple_jwt(safe, name):
    setattr(safe, f"ACCOUNTS_{name}", timedelta(minutes=1))
    [error] = checks.check_unknown_settings(app_configs=None)
    assert error.id == "accounts.E007"
    assert f"SIMPLE_JWT['{name}']" in error.hint


@pytest.mark.parametrize(
    "old, new",
    [
        ("AUTH_REFRESH_GRACE", "ACCOUNTS_REFRESH_GRACE"),
        ("AUTH_REFRESH_COOKIE_SECURE", "ACCOUNTS_REFRESH_COOKIE_SECURE"),
        ("AUTH_ACCESS_TOKEN_CHECKS_SESSION", "ACCOUNTS_ACCESS_TOKEN_CHECKS_SESSION"),
    ],
)
def test_a_setting_under_its_old_auth_name_is_e008_naming_the_new_one(safe, old, new):
    setattr(safe, old, getattr(app_settings, new.removeprefix("ACCOUNTS_")))

    [error] = checks.check_renamed_settings(app_configs=None)

    assert error.id == "accounts.E008"
    assert old in error.msg
    assert error.hint == f"Rename it to {new}."


def test_djangos_own_auth_settings_are_not_refused(safe):
    safe.AUTH_USER_MODEL = "accounts.User"
    safe.AUTH_PASSWORD_VALIDATORS = []
    assert checks.check_renamed_settings(app_configs=None) == []
    assert checks.check_unknown_settings(app_configs=None) == []


# --- E009-E015: the JWT keys ---------------------------------------------------------------------
def write_key(path, key, *, private=True, password=None) -> str:
    """``key`` (a cryptography key) as a PEM file: its private half, or its public half."""
    if private:
        encryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    else:
        data = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    path.write_bytes(data)
    return str(path)


def key_errors(safe, algorithm, signing=(), verify=()) -> list[tuple[str, str]]:
    safe.SIMPLE_JWT = {**safe.SIMPLE_JWT, "ALGORITHM": algorithm}
    safe.ACCOUNTS_JWT_SIGNING_KEYS = list(signing)
    safe.ACCOUNTS_JWT_VERIFY_KEYS = list(verify)
    return [(m.id, m.msg) for m in checks.check_jwt_keys(app_configs=None)]


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_an_asymmetric_algorithm_with_its_keys_passes(safe, key_file, algorithm):
    next_key = key_file(algorithm, "b")
    assert key_errors(safe, algorithm, signing=[key_file(algorithm), next_key]) == []
    assert key_errors(safe, algorithm, signing=[key_file(algorithm)], verify=[public_half(next_key)]) == []
    assert error_ids() == []


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_an_asymmetric_algorithm_without_a_signing_key_is_e010(safe, key_file, algorithm):
    assert [i for i, _ in key_errors(safe, algorithm)] == ["accounts.E010"]
    only_verify = [public_half(key_file(algorithm))]
    assert [i for i, _ in key_errors(safe, algorithm, verify=only_verify)] == ["accounts.E010"]


@pytest.mark.parametrize("algorithm", ["PS256", "ES384", "none", "EdDSA"])
def test_an_unsupported_algorithm_is_e009(safe, algorithm):
    assert [i for i, _ in key_errors(safe, algorithm)] == ["accounts.E009"]


def test_a_missing_key_file_is_e011_naming_it(safe, tmp_path):
    missing = str(tmp_path / "nowhere.pem")
    [(error_id, message)] = key_errors(safe, "ES256", signing=[missing])
    assert error_id == "accounts.E011" and missing in message


def test_an_unreadable_key_file_is_e011(safe, key_file, tmp_path):
    if os.geteuid() == 0:  # root reads any file: a directory stands in for an unreadable file
        unreadable = str(tmp_path)
    else:
        unreadable = tmp_path / "locked.pem"
        unreadable.write_bytes(open(key_file("ES256"), "rb").read())
        unreadable.chmod(0)
    assert [i for i, _ in key_errors(safe, "ES256", signing=[str(unreadable)])] == ["accounts.E011"]


@pytest.mark.parametrize(
    "content", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_a_file_that_holds_no_pem_key_is_e011(safe, tmp_path, content):
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    assert [i for i, _ in key_errors(safe, "ES256", signing=[str(path)])] == ["accounts.E011"]


def test_an_encrypted_key_is_e011(safe, tmp_path):
    path = write_key(tmp_path / "enc.pem", ec.generate_private_key(ec.SECP256R1()), password=b"secret")
    [(error_id, message)] = key_errors(safe, "ES256", signing=[path])
    assert error_id == "accounts.E011" and "encrypted" in message


@pytest.mark.parametrize(
    ("algorithm", "make"),
    [
        pytest.param(
            "ES256",
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            id="RSA for ES256",
        ),
        pytest.param("ES256", lambda: ec.generate_private_key(ec.SECP384R1()), id="P-384 for ES256"),
        pytest.param("RS256", lambda: ec.generate_private_key(ec.SECP256R1()), id="EC for RS256"),
        pytest.param("RS256", ed25519.Ed25519PrivateKey.generate, id="Ed25519 for RS256"),
    ],
)
def test_a_key_of_the_wrong_type_is_e012(safe, tmp_path, algorithm, make):
    key = make()
    signing = write_key(tmp_path / "sign.pem", key)
    assert [i for i, _ in key_errors(safe, algorithm, signing=[signing])] == ["accounts.E012"]


def test_a_public_key_among_the_signing_keys_is_e012(safe, key_file):
    [(error_id, message)] = key_errors(safe, "ES256", signing=[public_half(key_file("ES256"))])
    assert error_id == "accounts.E012" and "cannot sign" in message


def test_an_rsa_key_under_2048_bits_is_e013_to_sign_or_to_verify(safe, tmp_path, key_file):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    signing = write_key(tmp_path / "weak.pem", weak)
    assert [i for i, _ in key_errors(safe, "RS256", signing=[signing])] == ["accounts.E013"]
    verifying = write_key(tmp_path / "weak.pub", weak, private=False)
    errors = key_errors(safe, "RS256", signing=[key_file("RS256")], verify=[verifying])
    assert [i for i, _ in errors] == ["accounts.E013"]


def test_a_private_key_among_the_verify_keys_is_e014(safe, key_file):
    """Refused rather than quietly published by its public half: a private key has no business
    in the list of keys that never sign (move it after the signing key, or list its public half)."""
    errors = key_errors(safe, "ES256", signing=[key_file("ES256")], verify=[key_file("ES256", "b")])
    assert [i for i, _ in errors] == ["accounts.E014"]


@pytest.mark.parametrize("where", ["signing", "verify"])
def test_key_files_under_hs256_are_e015(safe, key_file, where):
    """Half-configured: the files would be ignored and tokens still signed with the secret."""
    assert [i for i, _ in key_errors(safe, "HS256", **{where: [key_file("ES256")]})] == ["accounts.E015"]


def test_each_bad_key_file_is_its_own_error(safe, tmp_path, key_file):
    errors = key_errors(
        safe, "ES256", signing=[key_file("ES256"), str(tmp_path / "gone.pem")], verify=[key_file("RS256")]
    )
    assert [i for i, _ in errors] == ["accounts.E011", "accounts.E012"]


def test_manage_check_refuses_an_asymmetric_algorithm_without_a_key():
    result = manage_check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=LONG_SECRET, JWT_ALGORITHM="RS256")
    assert result.returncode != 0
    assert "accounts.E010" in result.stderr


def test_manage_check_passes_with_a_generated_key(key_file):
    result = manage_check(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=LONG_SECRET,
        JWT_ALGORITHM="ES256",
        JWT_SIGNING_KEYS=key_file("ES256"),
    )
    assert result.returncode == 0, result.stderr


# --- refuse_unsafe_configuration (what wsgi.py runs) ----------------------------------------
@pytest.mark.parametrize(
    "unsafe",
    [
        {"CORS_ALLOW_ALL_ORIGINS": True},
        {"ACCOUNTS_REFRESH_COOKIE_SAMESITE": "None", "ACCOUNTS_REFRESH_COOKIE_SECURE": False},
        {"ACCOUNTS_REFRESH_COOKIE_SAMESITE": "bogus"},
        {"SECRET_KEY": DEVELOPMENT_SECRET_KEY},
        {"ACCOUNTS_REFRESH_GRAVE": timedelta(0)},
        {"AUTH_REFRESH_GRACE": timedelta(0)},
        {"SIMPLE_JWT": {"ALGORITHM": "ES256"}},
        {"ACCOUNTS_NATIVE_APP_ORIGINS": list(DEFAULT_CORS_ORIGINS[:1])},
        {"ACCOUNTS_NATIVE_APP_ORIGINS": ["https://app.example.com"]},
    ],
    ids=["E001", "E003", "E002", "E004", "E007", "E008", "E010", "E016", "E017"],
)
def test_refuse_unsafe_configuration_raises_improperly_configured(safe, unsafe, request):
    for key, value in unsafe.items():
        setattr(safe, key, value)
    with pytest.raises(ImproperlyConfigured, match=f"accounts.{request.node.callspec.id}"):
        checks.refuse_unsafe_configuration()


# --- manage.py check, in a fresh process reading the environment -----------------------------
def manage_check(**environment) -> subprocess.CompletedProcess:
    """``manage.py check`` with this environment, and a mail server unless it names one."""
    environment.setdefault("EMAIL_URL", "smtp://mail.example.com:25")
    return manage_py("check", unset=("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "EMAIL_URL"), **environment)


def test_manage_check_fails_with_debug_off_and_no_secret_key():
    result = manage_check(DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "accounts.E004" in result.stderr


def test_manage_check_passes_with_debug_off_and_a_long_secret_key():
    result = manage_check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=LONG_SECRET)
    assert result.returncode == 0, result.stderr
    assert "accounts." not in result.stdout + result.stderr


def test_manage_check_refuses_a_web_sites_origin_as_a_native_apps():
    result = manage_check(
        DJANGO_DEBUG="0", DJANGO_SECRET_KEY=LONG_SECRET, NATIVE_APP_ORIGINS="https://app.example.com"
    )
    assert result.returncode != 0
    assert "accounts.E017" in result.stderr


def test_manage_check_refuses_an_origin_in_both_environment_lists():
    result = manage_check(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=LONG_SECRET,
        CORS_ALLOWED_ORIGINS="https://localhost",
        NATIVE_APP_ORIGINS="capacitor://localhost,https://localhost",
    )
    assert result.returncode != 0
    assert "accounts.E016" in result.stderr and "accounts.E017" not in result.stderr


def test_manage_check_passes_with_hybrid_app_origins():
    result = manage_check(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=LONG_SECRET,
        NATIVE_APP_ORIGINS="capacitor://localhost,ionic://localhost,https://localhost",
    )
    assert result.returncode == 0, result.stderr


# --- proxy headers trusted while gunicorn binds a public address (accounts.W030) ------------
def warning_ids() -> list[str]:
    return [m.id for m in checks.check_proxy_headers_with_a_public_bind(app_configs=None)]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "8.8.8.8", "2001:4860:4860::8888"])
@pytest.mark.parametrize("trust", ["NUM_PROXIES", "TRUST_X_FORWARDED_PROTO"])
def test_trusted_proxy_headers_with_a_public_bind_warn_w030(settings, monkeypatch, host, trust):
    monkeypatch.setenv("HOST", host)
    if trust == "NUM_PROXIES":
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    else:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert warning_ids() == ["accounts.W030"]
    [warning] = checks.check_proxy_headers_with_a_public_bind(app_configs=None)
    assert trust in warning.msg and host in warning.msg


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "10.0.0.11", "192.168.1.5", "fd00::11", "localhost", ""]
)
def test_trusted_proxy_headers_with_a_private_or_unknown_bind_pass(settings, monkeypatch, host):
    monkeypatch.setenv("HOST", host)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert warning_ids() == []


def test_a_public_bind_without_trusted_proxy_headers_passes(settings, monkeypatch):
    monkeypatch.setenv("HOST", "0.0.0.0")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    settings.SECURE_PROXY_SSL_HEADER = None
    assert warning_ids() == []


# --- E042, E043: e-mail verification ---------------------------------------------------------
def test_an_unknown_email_verification_mode_is_refused_at_startup(settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatroy"
    assert [e.id for e in checks.check_email_verification()] == ["accounts.E042"]


def test_an_email_verify_url_without_a_key_is_refused_at_startup(settings):
    settings.ACCOUNTS_EMAIL_VERIFY_URL = "https://app.example.com/#verify="
    assert [e.id for e in checks.check_email_verification()] == ["accounts.E043"]


@pytest.mark.parametrize("mode", ["none", "optional", "mandatory"])
def test_each_email_verification_mode_passes_the_checks(settings, mode):
    settings.ACCOUNTS_EMAIL_VERIFICATION = mode
    assert checks.check_email_verification() == []


def test_manage_check_refuses_a_misspelt_email_verification_from_the_environment():
    result = manage_py("check", unset=("DJANGO_DEBUG",), DJANGO_DEBUG="1", EMAIL_VERIFICATION="Mandatory")
    assert result.returncode != 0
    assert "accounts.E042" in result.stderr


# --- E047: MFA_ENCRYPTION_KEYS ------------------------------------------------------------------
def test_an_mfa_encryption_key_that_is_not_a_fernet_key_is_refused_naming_its_place(safe):
    from cryptography.fernet import Fernet

    safe.ACCOUNTS_MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "not-a-key"]
    assert error_ids() == ["accounts.E047"]
    errors = checks.check_mfa_encryption_keys()
    assert [e.msg.split(" of ")[0] for e in errors] == ["Key 2"]
    assert "MFA_ENCRYPTION_KEYS" in errors[0].msg


def test_fernet_keys_pass_the_mfa_encryption_check(safe):
    from cryptography.fernet import Fernet

    safe.ACCOUNTS_MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode() for _ in range(2)]
    assert "accounts.E047" not in error_ids()


# --- E046: the passkeys' RP ID ------------------------------------------------------------------
@pytest.mark.parametrize(
    "rp_id", ["", "https://example.com", "example.com:443", "example.com/", "Example.com", "127.0.0.1", "::1"]
)
def test_an_rp_id_that_is_no_domain_is_e046(safe, rp_id):
    safe.ACCOUNTS_WEBAUTHN_RP_ID = rp_id
    assert error_ids() == ["accounts.E046"]


def test_an_https_origin_outside_the_rp_id_is_e046(safe):
    safe.ACCOUNTS_WEBAUTHN_RP_ID = "example.com"
    safe.CORS_ALLOWED_ORIGINS = ["https://app.example.com", "https://example.com", "https://notexample.com"]
    safe.CSRF_TRUSTED_ORIGINS = [*safe.CORS_ALLOWED_ORIGINS, "https://admin.example.org"]

    errors = checks.check_webauthn_rp_id()

    assert [e.id for e in errors] == ["accounts.E046", "accounts.E046"]
    assert "'https://notexample.com'" in errors[0].msg and "'https://admin.example.org'" in errors[1].msg


def test_http_origins_and_native_app_origins_are_not_held_to_the_rp_id(safe):
    """Browsers offer no WebAuthn over http outside localhost, and an app's web view is no page of
    the site: neither can use a passkey of the RP ID, and neither needs to."""
    safe.ACCOUNTS_WEBAUTHN_RP_ID = "example.com"
    safe.ACCOUNTS_NATIVE_APP_ORIGINS = ["https://localhost", "capacitor://localhost"]
    safe.CORS_ALLOWED_ORIGINS = ["https://app.example.com", "http://localhost:5173", "https://localhost"]

    assert error_ids() == []


def test_manage_check_refuses_a_page_outside_the_rp_id():
    result = manage_check(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=LONG_SECRET,
        CORS_ALLOWED_ORIGINS="https://app.example.com",
        WEBAUTHN_RP_ID="example.org",
    )
    assert result.returncode != 0
    assert "accounts.E046" in result.stderr and "example.org" in result.stderr
