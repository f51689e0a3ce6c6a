// The demo page: everything it knows about tokens comes from auth-client.js.
import { API_BASE } from "./config.js";
import { ApiError, createAuthClient } from "./auth-client.js";

const $ = (selector) => document.querySelector(selector);

const GOODBYES = {
  logout: "You are signed out.",
  logout_all: "You are signed out everywhere.",
};

let logouts = 0;
const client = createAuthClient({
  apiBase: API_BASE,
  onLogout: ({ reason }) => {
    logouts += 1;
    showSignedOut(GOODBYES[reason] ?? `Your session has ended (${reason}). Please sign in again.`);
  },
});
window.demo = { client }; // for the browser console and the end-to-end tests

function say(text, kind = "info") {
  const message = $("#message");
  message.textContent = text;
  message.className = kind;
  message.hidden = !text;
}

function describe(error) {
  if (!(error instanceof ApiError)) return `Cannot reach the API (${error.message}).`;
  const fields = Object.entries(error.body?.errors ?? {}).map(([field, errors]) => `${field}: ${errors.join(" ")}`);
  return [error.message, ...fields].join(" ");
}

function setState(state, status) {
  document.body.dataset.state = state;
  $("#status").textContent = status;
  $("#status").className = `pill ${state}`;
  $("#signed-in").hidden = state !== "signed-in";
  $("#signed-out").hidden = state !== "signed-out";
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

function timeCell(row, iso) {
  cell(row, relative(iso)).title = when(iso);
}

function browserName(userAgent) {
  const browser = userAgent.match(/(Firefox|Edg|HeadlessChrome|Chrome|Version(?=\/.*Safari))\/(\d+)/);
  const system = userAgent.match(/Windows|Mac OS X|Android|iPhone|iPad|Linux/);
  const name = browser ? `${browser[1].replace("Version", "Safari").replace("Edg", "Edge")} ${browser[2]}` : "Unknown";
  return system ? `${name} on ${system[0].replace("Mac OS X", "macOS")}` : name;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadMe() {
  const me = await client.json("/users/me/");
  $("#me").replaceChildren(
    ...[
      ["Username", me.username],
      ["Email", me.email],
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
  return me;
}

async function loadSessions() {
  const sessions = await client.json("/auth/sessions/");
  $("#sessions").replaceChildren(
    ...sessions.map((session) => {
      const row = document.createElement("tr");
      row.dataset.sessionId = session.id;
      cell(row, browserName(session.user_agent), "browser").title = session.user_agent;
      cell(row, session.ip ?? "—");
      timeCell(row, session.created_at);
      timeCell(row, session.last_used_at);
      timeCell(row, session.expires_at);
      const action = row.insertCell();
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

$("#reload-me").addEventListener("click", (event) => act(event.target, () => showSignedIn()));
$("#logout").addEventListener("click", (event) => act(event.target, () => client.logout()));
$("#logout-all").addEventListener("click", (event) => act(event.target, () => client.logoutAll()));

$("#page-origin").textContent = location.origin;
$("#api-base").textContent = API_BASE;

// Silent session restore: a reload or a new tab signs in from the refresh cookie, if there is one.
try {
  if (await client.restore()) await showSignedIn();
  else showSignedOut();
} catch (error) {
  showSignedOut();
  say(describe(error), "error");
}
