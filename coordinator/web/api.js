// The rendezvous REST API as the dashboard uses it: the signed-in credential, its refresh before
// expiry, and requests whose errors become one readable sentence (problem JSON `detail`).

const API = "/api/v1";
const STORAGE_KEY = "burnstand.credential";
// Refresh when this share of the credential's lifetime is left (but at least 5 s, at most 5 min
// before expiry), so a slow network still gets the new one in time.
const REFRESH_SHARE = 0.25;

export class ApiError extends Error {
  constructor(status, title, detail, field) {
    super(detail || title || `request failed (HTTP ${status})`);
    this.status = status;
    this.title = title || "";
    this.field = field || null;
  }
}

async function problem(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (body && typeof body === "object") {
    return new ApiError(resp.status, body.title, body.detail, body.field);
  }
  return new ApiError(resp.status, resp.statusText, null, null);
}

async function call(method, path, { token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "Coordinator not reachable", "The coordinator is not reachable; check the network and try again.", null);
  }
  if (!resp.ok) throw await problem(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

/** The signed-in person: credential, role, show and expiry; refreshes itself before expiry. */
export class Auth extends EventTarget {
  constructor() {
    super();
    this.token = null;
    this.me = null; // GET /credentials/me
    this.expiresAt = null; // ms since epoch, null for credentials that do not expire
    this.lifetime = null; // seconds a refresh asks for
    this._timer = null;
    this._refreshing = null;
  }

  get role() {
    return this.me ? this.me.role : null;
  }

  get signedIn() {
    return this.token !== null && this.me !== null;
  }

  /** Check a pasted credential with the coordinator and keep it. */
  async useCredential(token, lifetime = null) {
    const clean = token.trim();
    if (!clean) throw new ApiError(0, "", "Paste a credential first.", "credential");
    const me = await call("GET", "/credentials/me", { token: clean });
    if (me.role === "appliance") {
      throw new ApiError(403, "", "That is a kiosk appliance's credential; sign in as a person.", "credential");
    }
    this._adopt(clean, me, lifetime);
  }

  /** "Enter system": trade email, secret and show for a credential (POST /join). */
  async enterSystem(email, secret, show, duration) {
    const cred = await call("POST", "/join", {
      body: { user: email.trim(), secret, show: Number(show), duration: Number(duration) },
    });
    const me = await call("GET", "/credentials/me", { token: cred.credential });
    this._adopt(cred.credential, me, cred.expires_in);
  }

  _adopt(token, me, lifetime) {
    this.token = token;
    this.me = me;
    this.expiresAt = me.expires_at ? Date.parse(me.expires_at) : null;
    if (this.expiresAt !== null) {
      const left = Math.max(1, Math.round((this.expiresAt - Date.now()) / 1000));
      this.lifetime = lifetime || this.lifetime || left;
    } else {
      this.lifetime = null;
    }
    this._save();
    this._schedule();
    this.dispatchEvent(new Event("change"));
  }

  _save() {
    sessionStorage.setItem(
      STORAGE_KEY,
      JSON.stringify({ token: this.token, lifetime: this.lifetime }),
    );
  }

  /** Back from a reload: the credential kept in this tab, checked again. */
  async restore() {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return false;
    let saved;
    try {
      saved = JSON.parse(raw);
    } catch {
      sessionStorage.removeItem(STORAGE_KEY);
      return false;
    }
    try {
      await this.useCredential(saved.token, saved.lifetime);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) throw err;
      sessionStorage.removeItem(STORAGE_KEY);
      return false;
    }
  }

  /** Sign out for good: the coordinator revokes this credential, then the tab forgets it. */
  async revokeAndSignOut() {
    try {
      await this.request("DELETE", "/credentials/me");
    } finally {
      if (this.token !== null) this.signOut(null);
    }
  }

  signOut(reason = null) {
    clearTimeout(this._timer);
    this._timer = null;
    this.token = null;
    this.me = null;
    this.expiresAt = null;
    sessionStorage.removeItem(STORAGE_KEY);
    this.dispatchEvent(new CustomEvent("signedout", { detail: reason }));
    this.dispatchEvent(new Event("change"));
  }

  _schedule() {
    clearTimeout(this._timer);
    this._timer = null;
    if (this.expiresAt === null) return;
    const lifetimeMs = this.lifetime * 1000;
    const margin = Math.min(300_000, Math.max(5_000, lifetimeMs * REFRESH_SHARE));
    const wait = Math.max(0, this.expiresAt - margin - Date.now());
    this._timer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  /** Trade the credential for a fresh one before it expires; the view stays as it is. */
  refresh() {
    if (this.expiresAt === null || !this.token) return Promise.resolve();
    if (this._refreshing) return this._refreshing;
    this._refreshing = (async () => {
      try {
        const cred = await call("POST", "/credentials/refresh", {
          token: this.token,
          body: { duration: this.lifetime },
        });
        this.token = cred.credential;
        this.expiresAt = Date.parse(cred.expires_at);
        this.me = { ...this.me, expires_at: cred.expires_at };
        this._save();
        this._schedule();
        this.dispatchEvent(new Event("refreshed"));
        this.dispatchEvent(new Event("change"));
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          this.signOut(`Your credential ran out (${err.message}). Sign in again.`);
        } else {
          // Unreachable for now: try again shortly, while the old credential still works.
          clearTimeout(this._timer);
          this._timer = setTimeout(() => this.refresh().catch(() => {}), 5_000);
        }
        throw err;
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /** A request with this credential; a 401 signs out with the coordinator's reason. */
  async request(method, path, body) {
    try {
      return await call(method, path, { token: this.token, body });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && this.token) {
        this.signOut(`Signed out: ${err.message}`);
      }
      throw err;
    }
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  patch(path, body) {
    return this.request("PATCH", path, body);
  }

  del(path) {
    return this.request("DELETE", path);
  }

  /** Every item of a list endpoint (pages of 500). */
  /** A file the API serves (a CSV export) as a Blob, with the credential. */
  async blob(path) {
    let resp;
    try {
      resp = await fetch(API + path, { headers: { Authorization: `Bearer ${this.token}` }, cache: "no-store" });
    } catch {
      throw new ApiError(0, "Coordinator not reachable", "The coordinator is not reachable; check the network and try again.", null);
    }
    if (!resp.ok) throw await problem(resp);
    return resp.blob();
  }

  async all(path) {
    const items = [];
    const sep = path.includes("?") ? "&" : "?";
    for (let offset = 0; offset < 100_000; offset += 500) {
      const page = await this.get(`${path}${sep}limit=500&offset=${offset}`);
      items.push(...page.items);
      if (items.length >= page.total || page.items.length === 0) break;
    }
    return items;
  }
}
