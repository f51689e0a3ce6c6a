"""Second factors on the demo page, in Chromium: an authenticator app set up from the page's QR code
and key (codes computed here with pyotp from the key the page shows, as the app would), the second
step of a sign-in with a code or a recovery code, the "Confirm it's you" dialog, and passkeys made
by Chromium's virtual authenticator (CDP WebAuthn domain), registered on the page and used to sign
in without a password.

The API runs with WEBAUTHN_RP_ID=localhost (the page's host) and a 2-second access-token lifetime;
see conftest.py.
"""

import time

import pyotp
import pytest
from playwright.sync_api import expect

from .conftest import ACCESS_TOKEN_LIFETIME, DemoPage, refresh_cookie

INVALID_CODE = (
    "That code is not right. The app's code changes every 30 seconds and each works once: enter the one "
    "it shows now, or one of your recovery codes."
)

PASSKEY_REFUSED = (
    "That passkey was not accepted: it may have been removed from your account. Use your password instead."
)


class VirtualAuthenticator:
    """Chromium's virtual authenticator in one tab (CDP WebAuthn.addVirtualAuthenticator): built in
    (transport internal), CTAP2, with resident keys and user verification that always succeeds, as
    a laptop's fingerprint reader would; presence is confirmed without a prompt."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        options = {
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": True,
            "hasUserVerification": True,
            "isUserVerified": True,
            "automaticPresenceSimulation": True,
        }
        self.id = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]

    def credentials(self) -> list[dict]:
        """The credentials it holds (id, rpId, isResidentCredential, signCount, ...)."""
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})["credentials"]


@pytest.fixture
def demo(context, open_demo, account) -> DemoPage:
    """The demo page, signed in as ``account``."""
    page = open_demo(context)
    page.sign_in(account)
    return page


def next_code(app: pyotp.TOTP) -> str:
    """The code of the next 30-second step: the API allows one step of drift, and takes a step only
    after the last one it accepted (setting the app up used the current one)."""
    return app.at(time.time() + app.interval)


def set_up_the_app(demo: DemoPage) -> tuple[pyotp.TOTP, list[str]]:
    """Set up an authenticator app on the page, as a person would with the key it shows; returns the
    app (pyotp) and the recovery codes the page showed."""
    demo.click("Set up an authenticator app")
    expect(demo.page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    app = pyotp.TOTP(demo.page.locator("#totp-secret").inner_text().replace(" ", ""))
    demo.page.get_by_label("Code from the app").fill(app.now())
    demo.click("Turn on")
    codes = demo.page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    recovery_codes = codes.all_inner_texts()
    demo.click("I have saved them")
    expect(codes).to_have_count(0)
    return app, recovery_codes


def enter_password(demo: DemoPage, username: str) -> None:
    """The password form, for an account whose sign-in then asks for a second factor."""
    form = demo.page.locator("#login-form")
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill("correct horse battery staple")
    form.get_by_role("button", name="Sign in").click()
    expect(demo.page.locator("body")).to_have_attribute("data-state", "mfa")
    expect(demo.page.locator("#status")).to_have_text("One more step")


def enter_code(demo: DemoPage, code: str) -> None:
    form = demo.page.locator("#mfa-form")
    form.get_by_label("Code").fill(code)
    form.get_by_role("button", name="Verify").click()


def sign_out(demo: DemoPage) -> None:
    demo.click("Log out")
    demo.expect_signed_out()


def test_an_authenticator_app_set_up_from_the_page_is_asked_for_at_the_next_sign_in(
    demo, account, context, server_database
):
    page = demo.page
    expect(page.locator("#totp-state")).to_contain_text("Off")

    demo.click("Set up an authenticator app")

    # The server's QR code is an image (an SVG in a data: URL, which runs no script), never markup.
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # it decoded: a picture
    assert page.locator("#security svg").count() == 0
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    app = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(app.now())
    demo.click("Turn on")

    expect(page.locator("#message")).to_contain_text("The authenticator app is on")
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    assert len(set(codes.all_inner_texts())) == 10
    expect(page.locator("#totp-state")).to_contain_text("On")
    expect(page.locator("#totp-state")).to_contain_text("10 recovery codes left")
    assert secret not in page.locator("body").inner_text()  # the key is off the page once confirmed
    demo.click("I have saved them")
    expect(codes).to_have_count(0)  # shown once: gone from the page too

    sign_out(demo)
    enter_password(demo, account)
    assert refresh_cookie(context) is None  # the password alone opened no session
    near = {app.at(time.time() + steps * app.interval) for steps in (-1, 0, 1, 2)}
    enter_code(demo, next(code for code in (f"{n:06d}" for n in range(1000)) if code not in near))
    expect(page.locator("#message")).to_have_text(INVALID_CODE)
    expect(page.locator("body")).to_have_attribute("data-state", "mfa")

    enter_code(demo, next_code(app))

    demo.expect_signed_in(account)
    assert refresh_cookie(context) is not None
    assert server_database.sessions(account)[-1]["amr"] == "pwd otp"


def test_a_recovery_code_signs_in_once_and_the_page_counts_those_left(demo, account):
    _, recovery_codes = set_up_the_app(demo)
    sign_out(demo)

    enter_password(demo, account)
    enter_code(demo, recovery_codes[3])

    demo.expect_signed_in(account)
    expect(demo.page.locator("#totp-state")).to_contain_text("9 recovery codes left")
    sign_out(demo)
    enter_password(demo, account)
    enter_code(demo, recovery_codes[3])
    expect(demo.page.locator("#message")).to_have_text(INVALID_CODE)
    expect(demo.page.locator("body")).to_have_attribute("data-state", "mfa")


def test_five_wrong_codes_end_the_second_step_and_the_page_starts_over(demo, account):
    app, _ = set_up_the_app(demo)
    sign_out(demo)
    enter_password(demo, account)
    near = {app.at(time.time() + steps * app.interval) for steps in (-1, 0, 1, 2)}
    wrong = [code for code in (f"{n:06d}" for n in range(1000)) if code not in near]

    for code in wrong[:5]:
        enter_code(demo, code)
        expect(demo.page.locator("#message")).to_have_text(INVALID_CODE)
    enter_code(demo, next_code(app))  # the right code, too late: the step died with the fifth

    demo.expect_signed_out()
    expect(demo.page.locator("#message")).to_have_text(
        "This sign-in took too long, or had too many wrong codes. Please sign in again with your password."
    )


def test_a_change_after_an_old_sign_in_asks_who_it_is_then_goes_on(demo, account, server_database):
    page = demo.page
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    server_database.sign_ins_long_ago(account)
    time.sleep(ACCESS_TOKEN_LIFETIME + 0.5)  # the next access token comes from the session's auth_time

    demo.click("Set up an authenticator app")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Your password").fill("not the password")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.locator("#reauth-message")).to_have_text("That password is not correct.")
    dialog.get_by_label("Your password").fill("correct horse battery staple")
    dialog.get_by_role("button", name="Confirm").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    app = pyotp.TOTP(page.locator("#totp-secret").inner_text().replace(" ", ""))
    page.get_by_label("Code from the app").fill(app.now())
    demo.click("Turn on")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    first_codes = page.locator("#recovery-codes li").all_inner_texts()
    demo.click("I have saved them")

    # Later again: "Cancel" changes nothing; a code from the app confirms it is you as well.
    server_database.sign_ins_long_ago(account)
    time.sleep(ACCESS_TOKEN_LIFETIME + 0.5)
    demo.click("New recovery codes")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#message")).to_have_text("Nothing was changed.")
    expect(page.locator("#recovery-codes li")).to_have_count(0)
    demo.click("New recovery codes")
    dialog.get_by_label("Or a code").fill(next_code(app))
    dialog.get_by_role("button", name="Confirm").click()

    expect(page.locator("#message")).to_have_text("New recovery codes: the old ones no longer work.")
    new_codes = page.locator("#recovery-codes li")
    expect(new_codes).to_have_count(10)
    assert not set(new_codes.all_inner_texts()) & set(first_codes)


# Browsers before WebAuthn Level 3's JSON forms (Safari 17, Firefox 118): auth-client.js converts.
WITHOUT_JSON_FORMS = """
    delete PublicKeyCredential.parseCreationOptionsFromJSON;
    delete PublicKeyCredential.parseRequestOptionsFromJSON;
    delete PublicKeyCredential.prototype.toJSON;
"""


@pytest.mark.parametrize("json_forms", ["the browser's", "converted by auth-client.js"])
def test_a_passkey_registered_on_the_page_signs_in_without_a_password(
    demo, account, json_forms, server_database
):
    page = demo.page
    if json_forms != "the browser's":
        page.add_init_script(WITHOUT_JSON_FORMS)
        page.reload()
        demo.settle()
        demo.expect_signed_in(account)
        assert page.evaluate("typeof PublicKeyCredential.prototype.toJSON") == "undefined"
    authenticator = VirtualAuthenticator(page)

    page.get_by_label("Name of the new passkey").fill("This laptop")
    demo.click("Add a passkey")

    expect(page.locator("#message")).to_have_text(
        "Passkey “This laptop” added: you can sign in with it, without a password."
    )
    expect(page.locator("#passkeys tr")).to_have_count(1)
    expect(page.locator("#passkeys tr")).to_contain_text("This laptop")
    [credential] = authenticator.credentials()
    assert (credential["rpId"], credential["isResidentCredential"]) == ("localhost", True)

    sign_out(demo)
    demo.click("Sign in with a passkey")

    demo.expect_signed_in(account)
    assert server_database.sessions(account)[-1]["amr"] == "hwk user"
    assert authenticator.credentials()[0]["signCount"] >= 1

    # Removed from the account, the passkey still in the authenticator signs nobody in.
    page.get_by_role("button", name="Remove This laptop").click()
    expect(page.locator("#passkeys tr")).to_have_count(0)
    expect(page.locator("#passkeys-none")).to_be_visible()
    sign_out(demo)
    demo.click("Sign in with a passkey")
    expect(page.locator("#message")).to_have_text(PASSKEY_REFUSED)
    demo.expect_signed_out()


def test_a_passkey_answers_the_second_step_after_the_password(demo, account, server_database):
    page = demo.page
    VirtualAuthenticator(page)
    set_up_the_app(demo)
    page.get_by_label("Name of the new passkey").fill("This laptop")
    demo.click("Add a passkey")
    expect(page.locator("#passkeys tr")).to_have_count(1)
    sign_out(demo)

    enter_password(demo, account)
    demo.click("Use a passkey")

    demo.expect_signed_in(account)
    assert server_database.sessions(account)[-1]["amr"] == "pwd hwk"


def test_a_passkey_confirms_it_is_you_after_an_old_sign_in(demo, account, server_database):
    page = demo.page
    VirtualAuthenticator(page)
    page.get_by_label("Name of the new passkey").fill("This laptop")
    demo.click("Add a passkey")
    expect(page.locator("#passkeys tr")).to_have_count(1)
    server_database.sign_ins_long_ago(account)
    time.sleep(ACCESS_TOKEN_LIFETIME + 0.5)

    demo.click("Set up an authenticator app")
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    dialog.get_by_role("button", name="Use a passkey").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
