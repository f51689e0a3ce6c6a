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
};

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

function describe(error) {
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
      cell(row, session.device || "Unknown device", null, "browser").title = session.user_agent;
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

async function showSignedIn(text = "") {
  const me = await loadMe();
  await loadSessions();
  setState("signed-in", `Signed in as ${me.username}`);
  say(text, "ok");
}

/** Run an action from a button or form: disabled while it runs, errors shown on the page. */
async function act(control, action) {
  const logoutsBefore = logouts;
  control.disabled = true;
  try {
    await action();
  } catch (error) {
    // If the session ended meanwhile, onLogout has already shown the signed-out page and said why.
    if (logouts === logoutsBefore) say(describe(error), "error");
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

onSubmit($("#login-form"), async ({ username, password }) => {
  await client.login(username, password);
  await showSignedIn();
});

onSubmit($("#register-form"), async ({ username, email, password }) => {
  await client.register({ username, email, password });
  await client.login(username, password);
  await showSignedIn(`Welcome, ${username}: your account is ready and you are signed in.`);
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
