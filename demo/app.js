// The demo page: everything it knows about tokens comes from auth-client.js.
import { API_BASE } from "./config.js";
import { ApiError, createAuthClient } from "./auth-client.js";

const $ = (selector) => document.querySelector(selector);

const GOODBYES = {
  logout: "You are signed out.",
  logout_all: "You are signed out everywhere.",
};

/** What each of the API's error codes means to the person at the keyboard. */
const MESSAGES = {
  invalid_credentials: "That username and password don't match. Check them and try again.",
  token_revoked:
    "You were signed out on this device: the session was ended from another device, by an administrator, " +
    "or after a password change. Please sign in again.",
  token_expired: "Your session has expired. Please sign in again.",
  token_not_valid: "Your sign-in is no longer valid. Please sign in again.",
  not_authenticated: "Please sign in to continue.",
  throttled: (error) => {
    const seconds = error.message.match(/(\d+) seconds?/)?.[1];
    const wait = seconds ? `${seconds} second${seconds === "1" ? "" : "s"}` : "a moment";
    return `Too many attempts. Please wait ${wait} and try again.`;
  },
  csrf_failed: "This page's security check failed. Reload the page and try again.",
  service_unavailable: "The service is unavailable right now. Please try again in a moment.",
  duplicate_refresh_cookie:
    "Your browser holds two sign-in cookies for this site, and another site may have set one of them. " +
    "Clear this site's cookies, then sign in again.",
  body_transport_forbidden: "This page sent a request meant for apps, not browsers. Reload the page and try again.",
  wrong_password: "Your current password is not correct.",
  username_taken: "That username is taken. Please choose another one.",
  not_found: "That is no longer there: it may have been removed already. Reload to see the current list.",
  permission_denied: "You are not allowed to do that.",
  method_not_allowed: "This page sent a request the service does not accept. Reload the page and try again.",
  bad_request: "This page sent a request the service could not accept. Reload the page and try again.",
  parse_error: "This page sent a request the service could not read. Reload the page and try again.",
  unsupported_media_type: "This page sent a request the service could not read. Reload the page and try again.",
  request_too_large: "That was too much to send at once. Please shorten it and try again.",
  server_error: "Something went wrong on our side. Please try again in a moment.",
  invalid: "Please check what you typed: the service could not accept it.",
  invalid_key: "That link is not valid: it may have expired, or been used already. Please ask for a new one.",
  email_unverified:
    "Please verify your email address first: open the link we mailed you. Signed out? Ask for a new " +
    "link with the form below.",
  invalid_code:
    "That code is not right. The app's code changes every 30 seconds and each works once: enter the one " +
    "it shows now, or one of your recovery codes.",
  mfa_token_invalid:
    "This sign-in took too long, or had too many wrong codes. Please sign in again with your password.",
  reauthentication_required: "Please confirm it's you first: enter your password again, then try once more.",
  totp_already_enabled: "An authenticator app is on already. Turn it off first to set up another one.",
  totp_not_pending:
    "The set-up of the authenticator app was not started, or was cancelled: please start again.",
  no_second_factor: "Recovery codes stand in for a second factor: set up an authenticator app first.",
  passkey_exists: "This passkey is registered already.",
  conflict: "That cannot be done right now: the page may be out of date. Reload it and try again.",
};

/** What the browser's passkey errors (DOMException names) mean to people. */
const PASSKEY_MESSAGES = {
  NotAllowedError: "The passkey request was cancelled or timed out. Try again when you are ready.",
  InvalidStateError: "This device already holds a passkey for your account.",
  NotSupportedError: "This browser or device cannot use passkeys.",
  SecurityError: "Passkeys do not work on this page's address.",
  AbortError: "The passkey request was cancelled. Try again when you are ready.",
};

/** A refused passkey says so, not "that code is not right". */
const PASSKEY_REFUSED =
  "That passkey was not accepted: it may have been removed from your account. Use your password instead.";

/** Thrown when the person closes the "Confirm it's you" dialog: nothing changed, nothing to say. */
class Cancelled extends Error {}

/** A message for people, for an error code (or a reason a session ended). */
function explain(code, error = new Error("")) {
  const message = MESSAGES[code];
  return typeof message === "function" ? message(error) : message;
}

let logouts = 0;
const client = createAuthClient({
  apiBase: API_BASE,
  onLogout: ({ reason }) => {
    logouts += 1;
    showSignedOut(GOODBYES[reason] ?? explain(reason) ?? "Your session has ended. Please sign in again.");
  },
});
window.demo = { client, describe, ApiError }; // for the browser console and the end-to-end tests

function say(text, kind = "info") {
  const message = $("#message");
  message.textContent = text;
  message.className = kind;
  message.hidden = !text;
}

const FIELDS = { username: "Username", email: "Email", password: "Password", new_password: "New password" };

function describe(error, { passkey = false } = {}) {
  if (error instanceof DOMException && PASSKEY_MESSAGES[error.name]) return PASSKEY_MESSAGES[error.name];
  if (passkey && error instanceof ApiError && error.code === "invalid_code") return PASSKEY_REFUSED;
  if (!(error instanceof ApiError)) {
    return "Cannot reach the API: check your connection, or whether the service is running, and try again.";
  }
  const errors = Object.entries(error.body?.errors ?? {});
  if (errors.length) {
    // Validation errors: the API's own sentences, per field ("That username is taken.").
    return errors.map(([field, texts]) => `${FIELDS[field] ?? field}: ${texts.join(" ")}`).join(" ");
  }
  return (
    explain(error.code, error) ??
    (error.status >= 500
      ? "Something went wrong on our side. Please try again in a moment."
      : "That did not work. Please reload the page and try again.")
  );
}

function setState(state, status) {
  document.body.dataset.state = state;
  $("#status").textContent = status;
  $("#status").className = `pill ${state}`;
  $("#signed-in").hidden = state !== "signed-in";
  $("#signed-out").hidden = state !== "signed-out";
  $("#reset").hidden = state !== "reset";
  $("#second-step").hidden = state !== "mfa";
}

function showSignedOut(text = "") {
  setState("signed-out", "Signed out");
  say(text);
}

const when = (iso) => new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });

const UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

/** "just now", "5 minutes ago", "in 7 days". */
function relative(iso) {
  const seconds = (new Date(iso) - Date.now()) / 1000;
  const [unit, size] = UNITS.find(([, size]) => Math.abs(seconds) >= size) ?? [];
  if (!unit) return "just now";
  return new Intl.RelativeTimeFormat("en", { numeric: "auto" }).format(Math.round(seconds / size), unit);
}

function timeCell(row, label, iso) {
  cell(row, relative(iso), label).title = when(iso);
}

/** A cell; its label is shown beside it where the table is laid out as cards (narrow screens). */
function cell(row, text, label, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (label) td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

async function loadMe() {
  const me = await client.json("/users/me/");
  $("#me").replaceChildren(
    ...[
      ["Username", me.username],
      ["Email", me.email],
      ...("email_verified" in me ? [["Email verified", me.email_verified ? "yes" : "not yet"]] : []),
      ["User id", me.id],
      ["Joined", new Date(me.date_joined).toLocaleDateString([], { dateStyle: "medium" })],
    ].flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      return [dt, dd];
    }),
  );
  $("#resend-verification").hidden = me.email_verified !== false;
  return me;
}

async function loadSessions() {
  const sessions = await client.json("/auth/sessions/");
  $("#sessions").replaceChildren(
    ...sessions.map((session) => {
      const row = document.createElement("tr");
      row.dataset.sessionId = session.id;
      // The API names the device ("Chrome 131 on macOS"); the full user agent is in the tooltip.
      const device = cell(row, session.device || "Unknown device", null, "browser");
      device.title = session.user_agent;
      if (session.amr?.length) {
        const how = document.createElement("small");
        how.textContent = signedInWith(session.amr);
        device.append(how);
      }
      cell(row, session.ip ?? "—", "IP");
      timeCell(row, "Signed in", session.created_at);
      timeCell(row, "Last used", session.last_used_at);
      timeCell(row, "Expires", session.expires_at);
      const action = row.insertCell();
      action.className = "action";
      if (session.current) {
        action.innerHTML = '<span class="badge">this browser</span>';
      } else {
        const revoke = document.createElement("button");
        revoke.type = "button";
        revoke.className = "small danger";
        revoke.textContent = "Revoke";
        revoke.addEventListener("click", () =>
          act(revoke, async () => {
            await client.json(`/auth/sessions/${session.id}/`, { method: "DELETE" });
            await loadSessions();
            say("Session revoked: that browser is signed out at its next request.", "ok");
          }),
        );
        action.append(revoke);
      }
      return row;
    }),
  );
}

/** RFC 8176 amr values, as people say them. */
const METHODS = { pwd: "password", otp: "code", hwk: "passkey", swk: "passkey", user: null, mfa: null };

function signedInWith(amr) {
  const names = [...new Set(amr.map((value) => (value in METHODS ? METHODS[value] : value)).filter(Boolean))];
  return `with ${names.join(" + ")}`;
}

// --- Security: the authenticator app, recovery codes, passkeys -------------------------------------
const passkeysWork = "PublicKeyCredential" in window;
let security = { totp: false, recovery_codes_left: 0, passkeys: [] };

async function loadSecurity() {
  try {
    security = await client.mfaStatus();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    $("#security").hidden = true; // an API without second factors
    return;
  }
  $("#security").hidden = false;
  const left = security.recovery_codes_left;
  $("#totp-state").textContent = security.totp
    ? `On: sign-ins ask for a code from the app. ${left} recovery code${left === 1 ? "" : "s"} left.`
    : "Off: add an app (Google Authenticator, 1Password, Aegis…) to ask for a code after your password.";
  $("#totp-start").hidden = security.totp || !$("#totp-enrol").hidden;
  $("#totp-off").hidden = !security.totp;
  $("#recovery-new").hidden = !security.totp;
  $("#passkeys-none").hidden = security.passkeys.length > 0;
  $("#passkeys").replaceChildren(...security.passkeys.map(passkeyRow));
}

function passkeyRow(passkey) {
  const row = document.createElement("tr");
  row.dataset.passkeyId = passkey.id;
  cell(row, passkey.name, null, "browser");
  timeCell(row, "Added", passkey.created_at);
  if (passkey.last_used_at) timeCell(row, "Last used", passkey.last_used_at);
  else cell(row, "never used", "Last used");
  const action = row.insertCell();
  action.className = "action";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "small danger";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `Remove ${passkey.name}`);
  remove.addEventListener("click", () =>
    act(remove, async () => {
      await withReauthentication(() => client.removePasskey(passkey.id));
      await loadSecurity();
      say(`Passkey “${passkey.name}” removed: it no longer signs you in.`, "ok");
    }),
  );
  action.append(remove);
  return row;
}

function showRecoveryCodes(codes) {
  $("#recovery-codes").replaceChildren(
    ...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }),
  );
  $("#recovery").hidden = false;
}

/** The SVG the server drew, as an image: an <img> runs no script and inserts no markup. */
function showQrCode(svg) {
  $("#totp-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

$("#totp-start").addEventListener("click", (event) =>
  act(event.target, async () => {
    const { secret, qr_svg: svg } = await withReauthentication(() => client.startTotp());
    showQrCode(svg);
    $("#totp-secret").textContent = secret.match(/.{1,4}/g).join(" "); // easier to type in groups
    $("#totp-enrol").hidden = false;
    $("#totp-start").hidden = true;
    $("#totp-confirm-form input").focus();
  }),
);

onSubmit($("#totp-confirm-form"), async ({ code }) => {
  showRecoveryCodes(await withReauthentication(() => client.confirmTotp(code.trim())));
  $("#totp-enrol").hidden = true;
  $("#totp-qr").removeAttribute("src");
  $("#totp-secret").textContent = "";
  await loadSecurity();
  say("The authenticator app is on: your next sign-in asks for its code. Save your recovery codes.", "ok");
});

$("#recovery-done").addEventListener("click", () => {
  $("#recovery-codes").replaceChildren(); // shown once: gone from the page too
  $("#recovery").hidden = true;
});

$("#recovery-new").addEventListener("click", (event) =>
  act(event.target, async () => {
    showRecoveryCodes(await withReauthentication(() => client.regenerateRecoveryCodes()));
    await loadSecurity();
    say("New recovery codes: the old ones no longer work.", "ok");
  }),
);

$("#totp-off").addEventListener("click", (event) =>
  act(event.target, async () => {
    await withReauthentication(() => client.disableTotp());
    $("#recovery").hidden = true;
    await loadSecurity();
    say("The authenticator app is off, and its recovery codes no longer work.", "ok");
  }),
);

onSubmit($("#passkey-form"), async ({ name }) => {
  const passkey = await withReauthentication(() => client.registerPasskey(name.trim()));
  await loadSecurity();
  say(`Passkey “${passkey.name}” added: you can sign in with it, without a password.`, "ok");
});

// --- Confirm it's you: re-authentication when a change answers reauthentication_required ----------

/** Run `action`; if the API wants a recent sign-in first, ask for it, then run `action` once more. */
async function withReauthentication(action) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "reauthentication_required")) throw error;
  }
  await reauthenticate();
  return action();
}

let reauthentication = null; // { resolve, reject } while the dialog is open

/** Open the dialog; resolves once the API accepted a password, a code or a passkey. */
function reauthenticate() {
  const dialog = $("#reauth");
  $("#reauth-form").reset();
  $("#reauth-message").hidden = true;
  $("#reauth-passkey").hidden = !(passkeysWork && security.passkeys.length);
  dialog.showModal();
  return new Promise((resolve, reject) => {
    reauthentication = { resolve, reject };
  });
}

/** Close the dialog: resolved after a re-authentication, rejected with Cancelled otherwise. */
function closeReauthentication(done) {
  const pending = reauthentication;
  reauthentication = null;
  $("#reauth").close();
  if (done) pending?.resolve();
  else pending?.reject(new Cancelled());
}

async function reauthenticateWith(control, proof) {
  control.disabled = true;
  try {
    await client.reauthenticate(proof);
    closeReauthentication(true);
  } catch (error) {
    // Here invalid_credentials is the password alone: the username is not in question.
    $("#reauth-message").textContent =
      error instanceof ApiError && error.code === "invalid_credentials"
        ? "That password is not correct."
        : describe(error, { passkey: Boolean(proof.passkey) });
    $("#reauth-message").hidden = false;
  } finally {
    control.disabled = false;
  }
}

$("#reauth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { password, code } = Object.fromEntries(new FormData(event.target));
  const proof = password ? { password } : { code: code.trim() };
  if (!password && !proof.code) return;
  reauthenticateWith(event.submitter, proof);
});
$("#reauth-passkey").addEventListener("click", (event) =>
  reauthenticateWith(event.target, { passkey: true }),
);
$("#reauth-cancel").addEventListener("click", () => closeReauthentication(false));
$("#reauth").addEventListener("close", () => closeReauthentication(false)); // Escape, too

async function showSignedIn(text = "") {
  const me = await loadMe();
  await loadSessions();
  await loadSecurity();
  setState("signed-in", `Signed in as ${me.username}`);
  say(text, "ok");
}

/**
 * Run an action from a button or form: disabled while it runs, errors shown on the page (`passkey`:
 * the action used one, which a refusal then names).
 */
async function act(control, action, { passkey = false } = {}) {
  const logoutsBefore = logouts;
  control.disabled = true;
  try {
    await action();
  } catch (error) {
    if (error instanceof Cancelled) say("Nothing was changed.");
    // If the session ended meanwhile, onLogout has already shown the signed-out page and said why.
    else if (logouts === logoutsBefore) say(describe(error, { passkey }), "error");
  } finally {
    control.disabled = false;
  }
}

function onSubmit(form, action) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(new FormData(form));
    act(form.querySelector("button"), async () => {
      await action(fields);
      form.reset();
    });
  });
}

// --- Sign-in: the password, then the second step when the account has one; or a passkey alone ------
let secondStep = null; // { mfaToken, methods } between the password and the code

/** After a login's answer: signed in, or on to the second step. */
async function signedInOr(result, text = "") {
  if (!result.mfaRequired) {
    await showSignedIn(text);
    return;
  }
  secondStep = result;
  $("#mfa-passkey").hidden = !(passkeysWork && result.methods.includes("passkey"));
  setState("mfa", "One more step");
  say("");
  $("#mfa-form input").focus();
}

async function finishSecondStep(proof) {
  try {
    await signedInOr(await client.verifyMfa(secondStep.mfaToken, proof));
  } catch (error) {
    if (error instanceof ApiError && error.code === "mfa_token_invalid") showSignedOut(); // start over
    throw error;
  }
  secondStep = null;
}

onSubmit($("#login-form"), async ({ username, password }) => {
  await signedInOr(await client.login(username, password));
});

onSubmit($("#mfa-form"), async ({ code }) => {
  await finishSecondStep({ code: code.trim() });
});

$("#mfa-passkey").addEventListener("click", (event) =>
  act(event.target, () => finishSecondStep({ passkey: true }), { passkey: true }),
);

$("#mfa-cancel").addEventListener("click", () => {
  secondStep = null;
  showSignedOut();
});

$("#passkey-login").addEventListener("click", (event) =>
  act(event.target, async () => signedInOr(await client.loginWithPasskey()), { passkey: true }),
);

onSubmit($("#register-form"), async ({ username, email, password }) => {
  await client.register({ username, email, password });
  await signedInOr(
    await client.login(username, password),
    `Welcome, ${username}: your account is ready and you are signed in.`,
  );
});

onSubmit($("#reset-request-form"), async ({ email }) => {
  await client.requestPasswordReset(email);
  say("If an account uses that address, a link to choose a new password is on its way.", "ok");
});

/** The key of a link from a mail (#reset=KEY or #verify=KEY), taken out of the address bar. */
function linkKey(name) {
  const match = location.hash.match(new RegExp(`^#${name}=([^&]+)`));
  if (!match) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

const resetKey = linkKey("reset");

onSubmit($("#reset-confirm-form"), async ({ new_password }) => {
  await client.confirmPasswordReset(resetKey, new_password);
  showSignedOut();
  say("Your password is changed, and every session was signed out: sign in with the new password.", "ok");
});

$("#resend-verification").addEventListener("click", (event) =>
  act(event.target, async () => {
    await client.resendVerification();
    say("A new verification link is on its way to your address.", "ok");
  }),
);

$("#reload-me").addEventListener("click", (event) => act(event.target, () => showSignedIn()));
$("#logout").addEventListener("click", (event) => act(event.target, () => client.logout()));
$("#logout-all").addEventListener("click", (event) => act(event.target, () => client.logoutAll()));

if (!passkeysWork) for (const element of document.querySelectorAll(".passkey-only")) element.hidden = true;

$("#page-origin").textContent = location.origin;
$("#api-base").textContent = API_BASE;

// A verification link verifies first (it may be opened on another device, signed out), then the
// page goes on as after any load.
const verifyKey = linkKey("verify");
let verified = null; // what the page says about the link: [text, kind]
if (verifyKey) {
  try {
    await client.verifyEmail(verifyKey);
    verified = ["Your email address is verified.", "ok"];
  } catch (error) {
    verified = [describe(error), "error"];
  }
}

// Silent session restore: a reload or a new tab signs in from the refresh cookie, if there is one.
try {
  if (resetKey) setState("reset", "Choosing a new password");
  else if (await client.restore()) await showSignedIn();
  else showSignedOut();
  if (verified) say(...verified);
} catch (error) {
  showSignedOut();
  say(describe(error), "error");
}
