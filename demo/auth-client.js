/**
 * A browser client for the authproject API: one dependency-free ES module to copy into an SPA.
 *
 *   import { createAuthClient } from "./auth-client.js";
 *
 *   const auth = createAuthClient({
 *     apiBase: "https://api.example.com/api",
 *     onLogout: ({ reason }) => showLoginPage(reason),
 *   });
 *   if (!(await auth.restore())) showLoginPage();    // after a page load: silent refresh
 *   const me = await auth.json("/users/me/");        // Bearer token, one refresh + retry on 401
 *
 * What it does, and why:
 * - The access token lives in this module's memory only, never in localStorage, sessionStorage or
 *   a cookie, so it dies with the page. The refresh token is an httpOnly cookie that scripts
 *   cannot read at all; the browser sends it to /api/auth/ because every request here uses
 *   `credentials: "include"`.
 * - Refresh and logout act on that cookie, so the API wants a CSRF token with them: it is fetched
 *   once from /api/auth/csrf/ (a page on another origin cannot read the API's cookie jar) and sent
 *   as `X-CSRFToken`; a 403 `csrf_failed` fetches a new one and tries once more.
 * - A request answered 401 for its access token (expired, revoked, missing) triggers a refresh,
 *   and then is sent again, once; other 401s (a wrong code, reauthentication_required) are the
 *   answer, since sending them again would only spend an attempt. Refresh is
 *   single-flight: however many requests fail together, one refresh call goes out and the others
 *   wait for it. A 401 to a request that was sent before someone else's refresh finished is simply
 *   retried with the new token.
 * - When the refresh itself is refused (401: the session was logged out, revoked elsewhere or
 *   expired), the token is dropped and `onLogout` is called. A network error, 429 or 5xx is thrown
 *   to the caller instead: the session may well still be alive.
 * - `restore()` is the refresh that a page calls once on load, to get a new access token from the
 *   cookie after a reload or in a new tab.
 *
 * Two tabs of the same browser share the cookie and may refresh at the same moment; the API's
 * grace window answers the slower one with the current token, so both stay signed in.
 *
 * Second factors: `login()` resolves with `{ mfaRequired: true, mfaToken, methods }` instead of the
 * user when the account has one; `verifyMfa(mfaToken, { code })` or `{ passkey: true }` finishes
 * the sign-in. Adding or removing a factor answers 401 `reauthentication_required` when the last
 * sign-in is older than the server's REAUTHENTICATION_TIMEOUT: `reauthenticate({ password })` (or
 * `{ code }`, `{ passkey: true }`) and try again. Passkeys go through `navigator.credentials` with
 * the WebAuthn Level 3 JSON forms (converted by hand where a browser lacks them).
 *
 * Request bodies must be re-sendable (a string, FormData, URLSearchParams or Blob, not a stream),
 * because a request may be sent twice.
 */

/** An error answer from the API: `status`, and the `code` and `detail` of its JSON body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = body?.code ?? null;
    this.body = body;
  }
}

/** The 401 codes that mean "this access token does not work": a refresh may help. */
const REFRESHABLE = new Set(["token_expired", "token_not_valid", "token_revoked", "not_authenticated"]);

/** The parsed JSON body of an error response, or null when it has none. */
async function errorBody(response) {
  try {
    return await response.clone().json();
  } catch {
    return null;
  }
}

/**
 * Make a client.
 * @param {object} options
 * @param {string} options.apiBase  the API's root URL, e.g. "http://localhost:8000/api"
 * @param {(event: {reason: string}) => void} [options.onLogout]  called each time a signed-in
 *   client finds itself signed out: `reason` is "logout", "logout_all", or the API's error code
 *   when a refresh was refused (e.g. "token_revoked", "token_not_valid", "not_authenticated").
 */
export function createAuthClient({ apiBase, onLogout = () => {} }) {
  const base = apiBase.replace(/\/+$/, "");
  let access = null; // the access token: this variable is the only place it is kept
  let signedIn = false;
  let csrf = null; // Promise of the CSRF token, shared by all callers
  let refreshing = null; // Promise of the refresh in flight, shared by all callers

  const send = (path, init = {}) => fetch(base + path, { ...init, credentials: "include" });

  function signOut(reason) {
    const wasSignedIn = signedIn;
    access = null;
    signedIn = false;
    if (wasSignedIn) onLogout({ reason });
  }

  function csrfToken({ renew = false } = {}) {
    if (renew) csrf = null;
    csrf ??= send("/auth/csrf/")
      .then(async (response) => {
        if (!response.ok) throw new ApiError(response.status, await errorBody(response));
        return (await response.json()).csrf_token;
      })
      .catch((error) => {
        csrf = null; // ask again next time
        throw error;
      });
    return csrf;
  }

  /** POST to an endpoint that reads the refresh cookie (refresh, logout), with the CSRF token. */
  async function cookiePost(path) {
    const post = async (renew) =>
      send(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": await csrfToken({ renew }) },
        body: "{}",
      });
    const response = await post(false);
    if (response.status === 403 && (await errorBody(response))?.code === "csrf_failed") {
      return post(true); // the csrftoken cookie changed (cleared, or set by another tab): once more
    }
    return response;
  }

  async function refreshOnce() {
    const response = await cookiePost("/auth/refresh/");
    if (response.ok) {
      access = (await response.json()).access;
      signedIn = true;
      return true;
    }
    const body = await errorBody(response);
    if (response.status === 401) {
      signOut(body?.code ?? "not_authenticated");
      return false;
    }
    throw new ApiError(response.status, body);
  }

  /**
   * Get a new access token from the refresh cookie. Resolves true when signed in, false when the
   * API refused (the client is then signed out); rejects on network errors, 403, 429 and 5xx.
   * Concurrent callers share one request.
   */
  function refresh() {
    refreshing ??= refreshOnce().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  /**
   * fetch() against the API with the access token as a Bearer header and credentials included.
   * On 401 it refreshes (single-flight) and sends the request once more; if the refresh is
   * refused, it resolves with the 401 response after `onLogout` has run.
   * @param {string} path  relative to apiBase, e.g. "/users/me/"
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async function request(path, init = {}) {
    const withToken = (token) => {
      const headers = new Headers(init.headers);
      if (token) headers.set("Authorization", `Bearer ${token}`);
      return send(path, { ...init, headers });
    };
    const token = access;
    const response = await withToken(token);
    if (response.status !== 401 || !REFRESHABLE.has((await errorBody(response))?.code)) return response;
    if (access === token) {
      // Nobody has refreshed since this request went out: refresh (or join the refresh under way).
      if (!(await refresh())) return response;
    } else if (access === null) {
      return response; // the session ended while this request was in flight
    }
    return withToken(access);
  }

  /**
   * request() for JSON: sends `body` (if any) as JSON and resolves with the parsed answer (null for
   * 204), or rejects with an ApiError.
   */
  async function json(path, { method = "GET", body } = {}) {
    const init = { method };
    if (body !== undefined) {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const response = await request(path, init);
    if (!response.ok) throw new ApiError(response.status, await errorBody(response));
    return response.status === 204 ? null : response.json();
  }

  /** POST JSON without a token (register, login, the account e-mail links). */
  async function publicPost(path, body) {
    const response = await send(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new ApiError(response.status, await errorBody(response));
    return response.json();
  }

  /** A login's answer (password, second factor, passkey): signed in with the user, or the step. */
  function signedInOrStep(body) {
    if (body.mfa_required) return { mfaRequired: true, mfaToken: body.mfa_token, methods: body.methods };
    access = body.access;
    signedIn = true;
    return body.user;
  }

  /** Ask the browser's authenticator for an assertion to the request options the API answered. */
  async function assertion(options) {
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    return credentialJSON(credential);
  }

  return {
    /** True once login or a refresh succeeded, until a logout or a refused refresh. */
    get signedIn() {
      return signedIn;
    },

    /** After a page load: try to sign in silently from the refresh cookie. Resolves true or false. */
    restore: refresh,

    refresh,
    request,
    json,

    /** Create an account ({username, email, password}); resolves with the new user. */
    register: (fields) => publicPost("/auth/register/", fields),

    /**
     * Sign in; resolves with the user (the refresh token arrives as an httpOnly cookie), or, when
     * the account has a second factor, with `{ mfaRequired: true, mfaToken, methods }`: nobody is
     * signed in until verifyMfa() succeeds with that token.
     */
    async login(username, password) {
      return signedInOrStep(await publicPost("/auth/login/", { username, password }));
    },

    /**
     * The second step of a login: `{ code }` (from the authenticator app, or a recovery code) or
     * `{ passkey: true }` (asks this device's authenticator). Resolves with the user. A wrong code
     * rejects with `invalid_code`; the token dies after 5 of them, or after MFA_TOKEN_TIMEOUT
     * (`mfa_token_invalid`: sign in with the password again).
     */
    async verifyMfa(mfaToken, { code, passkey = false }) {
      let proof = { code };
      if (passkey) {
        const options = await publicPost("/auth/passkeys/login/options/", { mfa_token: mfaToken });
        proof = { passkey: await assertion(options) };
      }
      return signedInOrStep(await publicPost("/auth/mfa/verify/", { mfa_token: mfaToken, ...proof }));
    },

    /** Passwordless sign-in with a passkey on this device; resolves with the user. */
    async loginWithPasskey() {
      const options = await publicPost("/auth/passkeys/login/options/", {});
      const credential = await assertion(options);
      return signedInOrStep(await publicPost("/auth/passkeys/login/", { credential }));
    },

    /**
     * Prove it is still the same person ({ password }, { code } or { passkey: true }) after a 401
     * `reauthentication_required`; the new access token carries a fresh auth_time.
     */
    async reauthenticate({ password, code, passkey = false }) {
      let proof = password !== undefined ? { password } : { code };
      if (passkey) {
        const options = await json("/auth/passkeys/reauthenticate/options/", { method: "POST", body: {} });
        proof = { passkey: await assertion(options) };
      }
      access = (await json("/auth/reauthenticate/", { method: "POST", body: proof })).access;
    },

    // --- second factors of the signed-in user ---------------------------------------------------

    /** `{ totp, recovery_codes_left, passkeys: [{ id, name, created_at, last_used_at }] }`. */
    mfaStatus: () => json("/auth/mfa/"),

    /**
     * Start enrolling an authenticator app: `{ secret, otpauth_uri, qr_svg }` (the QR code drawn by
     * the server, as SVG text: show it as an image, never as HTML). Off until confirmTotp().
     */
    startTotp: () => json("/auth/mfa/totp/", { method: "POST", body: {} }),

    /** Confirm the app with a code it shows; resolves with the 10 recovery codes, shown this once. */
    confirmTotp: async (code) =>
      (await json("/auth/mfa/totp/confirm/", { method: "POST", body: { code } })).recovery_codes,

    /** Turn the authenticator app off (and its recovery codes). */
    disableTotp: () => json("/auth/mfa/totp/", { method: "DELETE" }),

    /** A new set of 10 recovery codes; the old ones stop working. */
    regenerateRecoveryCodes: async () =>
      (await json("/auth/mfa/recovery-codes/", { method: "POST", body: {} })).recovery_codes,

    /** Create a passkey on this device's authenticator and register it: `{ id, name, created_at }`. */
    async registerPasskey(name) {
      const options = await json("/auth/passkeys/register/options/", { method: "POST", body: {} });
      const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      return json("/auth/passkeys/register/", {
        method: "POST",
        body: { credential: credentialJSON(credential), name },
      });
    },

    /** Remove one of the user's passkeys. */
    removePasskey: (id) => json(`/auth/passkeys/${encodeURIComponent(id)}/`, { method: "DELETE" }),

    /**
     * Revoke this browser's session and delete its cookie (idempotent), then call onLogout. If the
     * API cannot be reached it rejects and the client stays signed in: the cookie is still there.
     */
    async logout() {
      const response = await cookiePost("/auth/logout/");
      if (!response.ok) throw new ApiError(response.status, await errorBody(response));
      signOut("logout");
    },

    /** Revoke every session of this user, in every browser; resolves with how many. */
    async logoutAll() {
      const { revoked } = await json("/auth/logout-all/", { method: "POST", body: {} });
      signOut("logout_all");
      return revoked;
    },

    // --- account e-mail: no session needed (a link may open on another device) ---------------

    /** Ask for a password-reset link; answered alike whether or not an account uses the address. */
    requestPasswordReset: (email) => publicPost("/auth/password/reset/", { email }),

    /** Set a new password with the key from a reset link. Signs nobody in: every session ends. */
    confirmPasswordReset: (key, newPassword) =>
      publicPost("/auth/password/reset/confirm/", { key, new_password: newPassword }),

    /** Verify an address with the key from a verification link. */
    verifyEmail: (key) => publicPost("/auth/email/verify/", { key }),

    /**
     * Send the verification link again: for the signed-in user's address, or, signed out, for
     * `email` (answered alike whether or not an unverified account uses it).
     */
    resendVerification: (email) =>
      signedIn
        ? json("/auth/email/verify/resend/", { method: "POST", body: {} })
        : publicPost("/auth/email/verify/resend/", { email }),

    /** Ask to change the signed-in user's address: a link goes to the new one. */
    changeEmail: (newEmail, password) =>
      json("/auth/email/change/", { method: "POST", body: { new_email: newEmail, password } }),
  };
}

// --- WebAuthn: the JSON forms of options and credentials (WebAuthn Level 3) ----------------------
// Browsers that have PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON
// and credential.toJSON() convert by themselves; for the others the binary fields (base64url in
// JSON, ArrayBuffers in the browser) are converted here.

const fromBase64url = (text) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

const toBase64url = (buffer) =>
  btoa(String.fromCharCode(...new Uint8Array(buffer)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

const withIds = (descriptors) => descriptors?.map((d) => ({ ...d, id: fromBase64url(d.id) }));

function creationOptions(options) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) {
    return PublicKeyCredential.parseCreationOptionsFromJSON(options);
  }
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: withIds(options.excludeCredentials),
  };
}

function requestOptions(options) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) {
    return PublicKeyCredential.parseRequestOptionsFromJSON(options);
  }
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    allowCredentials: withIds(options.allowCredentials),
  };
}

function credentialJSON(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const { response } = credential;
  const encoded = { clientDataJSON: toBase64url(response.clientDataJSON) };
  if (response.attestationObject) {
    encoded.attestationObject = toBase64url(response.attestationObject);
    encoded.transports = response.getTransports?.() ?? [];
  } else {
    encoded.authenticatorData = toBase64url(response.authenticatorData);
    encoded.signature = toBase64url(response.signature);
    if (response.userHandle) encoded.userHandle = toBase64url(response.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: encoded,
  };
}
