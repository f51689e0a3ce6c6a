"""Account e-mail in Chromium, with the links read from what a real SMTP server received: forgot
password, the link, a new password, signed in with it; a verification link opened in another
browser profile (another device, signed out)."""

from playwright.sync_api import expect

from ..helpers import PASSWORD, links_in, mail_text

NEW_PASSWORD = "a brand new passphrase 8"


def link_in_latest_mail(mail_server, *, to: str, start: str, after: int) -> str:
    """The link starting with ``start`` in the latest mail to ``to`` received after ``after`` mails."""
    for message in reversed(mail_server.wait_for(after + 1)[after:]):
        found = [link for link in links_in(mail_text(message)) if link.startswith(start)]
        if message["To"] == to and found:
            return found[0]
    raise AssertionError(f"no mail to {to} with a link starting {start}")


def test_forgot_password_then_the_mailed_link_then_a_new_password_then_sign_in(
    new_browser, open_demo, account, mail_server, page_origin
):
    address = f"{account}@example.com"
    demo = open_demo(new_browser())
    before = len(mail_server.messages)
    form = demo.page.locator("#reset-request-form")
    form.get_by_label("Email").fill(address)
    form.get_by_role("button", name="Send me a link").click()
    expect(demo.page.locator("#message")).to_contain_text("a link to choose a new password is on its way")

    link = link_in_latest_mail(mail_server, to=address, start=f"{page_origin}/#reset=", after=before)
    page = new_browser().new_page()  # the mail read on another device
    page.goto(link)
    expect(page.locator("body")).to_have_attribute("data-state", "reset")
    assert "#reset=" not in page.url  # the key is taken out of the address bar
    page.locator("#reset-confirm-form").get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the password").click()
    expect(page.locator("#message")).to_contain_text("Your password is changed")
    expect(page.locator("body")).to_have_attribute("data-state", "signed-out")

    demo.page.reload()
    demo.settle()
    demo.sign_in(account, NEW_PASSWORD)
    again = new_browser().new_page()  # the link opened again: used
    again.goto(link)
    again.locator("#reset-confirm-form").get_by_label("New password").fill("yet another passphrase 9")
    again.get_by_role("button", name="Set the password").click()
    expect(again.locator("#message")).to_contain_text("That link is not valid")


def test_a_verification_link_opened_in_another_browser_verifies_the_address(
    new_browser, open_demo, account, mail_server, page_origin
):
    address = f"{account}@example.com"
    signed_in = open_demo(new_browser())
    signed_in.sign_in(account, PASSWORD)
    expect(signed_in.page.locator("#me")).to_contain_text("not yet")
    link = link_in_latest_mail(mail_server, to=address, start=f"{page_origin}/#verify=", after=0)

    elsewhere = new_browser().new_page()  # signed out, on another device
    elsewhere.goto(link)
    expect(elsewhere.locator("#message")).to_contain_text("Your email address is verified.")
    expect(elsewhere.locator("body")).to_have_attribute("data-state", "signed-out")

    signed_in.click("Reload")
    expect(signed_in.page.locator("#me")).to_contain_text("yes")
    expect(signed_in.page.get_by_role("button", name="Send the verification link again")).to_be_hidden()
