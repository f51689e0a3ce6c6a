"""A person's name for the device behind a user agent: "Chrome 131 on macOS", "Safari 18 on iPhone",
"curl 8.1".

The user agent is parsed with ua-parser (the maintained Python port of the uap-core rules, which
are updated as browsers ship) once per session, when it is created, and the name is stored in
``Session.device``: refresh and the access-token check never parse anything, and the admin, the
commands and the API read a short column instead of parsing 100 agents per page.
"""

import re

from ua_parser import parse

# ua-parser's family names, as people say them.
BROWSERS = {
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome",
    "HeadlessChrome": "Headless Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
}
SYSTEMS = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
DEVICES = {"iPhone", "iPad", "iPod"}  # named instead of their system: "Safari 18 on iPhone"
MAX_LENGTH = 64
_FIRST_PRODUCT = re.compile(r"[^\s/;()]+(?:/[^\s;()]+)?")


def _version(major: str | None, minor: str | None) -> str:
    """The major version; single-digit majors also get the minor, since they change slowly
    ("curl 8.1", "Python Requests 2.32") while browsers' majors change every month."""
    if not major:
        return ""
    return f"{major}.{minor}" if minor and len(major) == 1 else major


def device_name(user_agent: str) -> str:
    """A short, readable name for the client that sent ``user_agent``; "" when there is none."""
    user_agent = user_agent.strip()
    if not user_agent:
        return ""
    result = parse(user_agent)
    client, system, device = result.user_agent, result.os, result.device
    if client is not None:
        family = BROWSERS.get(client.family, client.family)
        name = " ".join(part for part in (family, _version(client.major, client.minor)) if part)
    else:
        # No rule knows the client (an app's own agent, "MyApp/1.2 (iOS)"): its first product
        # token, unless that is the "Mozilla/5.0" every browser sends.
        match = _FIRST_PRODUCT.match(user_agent)
        token = match.group(0) if match else user_agent
        name = "Unknown browser" if token.startswith("Mozilla/") else token
    platform = ""
    if device is not None and device.family in DEVICES:
        platform = device.family
    elif system is not None and system.family != "Other":
        platform = SYSTEMS.get(system.family, system.family)
    return (f"{name} on {platform}" if platform else name)[:MAX_LENGTH]


_VERSION = re.compile(r"(?: \d[\w.]*|/\S*)")


def device_family(name: str) -> str:
    """A device name without its versions ("Chrome 131 on macOS": "Chrome on macOS"): the same
    device after an update, for telling a new device from a known one (``accounts.notices``)."""
    return _VERSION.sub("", name)
