// The live plane of one session for the dashboard: the client WebSocket /ws/<session> with its
// auth-first frame, the pub/sub subscription to the session's channels, the room snapshot, the
// browser commands (each answered by one reply frame) and reconnection after a drop or a
// coordinator restart. Rendering is left to the caller, who listens to the events below.
//
// Events: "state" (detail: {state, text}) for the connection, "snapshot" (the room), "burner",
// "kiosk" (one appliance: link state, burners, cache), "queue", "stats", "members", "room" (the
// room's own state), "expiring".

const COMMAND_TIMEOUT_MS = 10_000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5_000;
const SUSPENDED_RETRY_MS = 5_000;

// Close codes the server uses (docs/protocol.md, "Close codes") and what the page does.
const FATAL = {
  1003: "The dashboard sent something the coordinator does not understand; reload the page.",
  1008: "The coordinator refused this connection (not allowed); reload the page.",
  4002: "No such session for this credential. Check the session id, or join the session first.",
};

export class LiveSession extends EventTarget {
  constructor(sessionId, auth) {
    super();
    this.sessionId = sessionId.toLowerCase();
    this.auth = auth;
    this.ws = null;
    this.pending = new Map(); // action -> [{resolve, reject, timer}]
    this.retry = RETRY_MIN_MS;
    this.timer = null;
    this.stopped = false;
    this.authRetried = false;
    this.state = "connecting";
    this._onRefreshed = () => this._reauth();
    auth.addEventListener("refreshed", this._onRefreshed);
  }

  get channelPrefix() {
    return `session.${this.sessionId}.`;
  }

  _set(state, text) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, text } }));
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.auth.removeEventListener("refreshed", this._onRefreshed);
    this._failPending("the view was closed");
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000, "view closed");
    }
  }

  _connect() {
    if (this.stopped || !this.auth.token) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/${encodeURIComponent(this.sessionId)}`);
    this.ws = ws;
    this.closeInfo = null;
    this._set("connecting", "Connecting…");
    ws.onopen = () => {
      // Browsers cannot set headers on a WebSocket: the credential is the first frame.
      ws.send(JSON.stringify({ action: "auth", token: this.auth.token }));
      ws.send(JSON.stringify({ action: "subscribe", pattern: `${this.channelPrefix}*` }));
      this.command("snapshot")
        .then((room) => {
          this.retry = RETRY_MIN_MS;
          this.authRetried = false;
          this._set("live", "Live");
          this.dispatchEvent(new CustomEvent("snapshot", { detail: room }));
        })
        .catch(() => {});
    };
    ws.onmessage = (ev) => this._frame(ev.data);
    ws.onclose = (ev) => this._closed(ws, ev);
  }

  _frame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.action) {
      case "message":
        this._published(msg.channel, msg.data);
        return;
      case "expiring":
        this.dispatchEvent(new CustomEvent("expiring", { detail: msg }));
        return;
      case "closing":
        this.closeInfo = msg;
        return;
      default:
        if ("status" in msg) this._reply(msg);
    }
  }

  _published(channel, data) {
    if (typeof channel !== "string" || !channel.startsWith(this.channelPrefix)) return;
    const rest = channel.slice(this.channelPrefix.length);
    let kind = rest;
    if (rest.startsWith("burner.")) kind = "burner";
    else if (rest.startsWith("kiosk.")) kind = "kiosk";
    else if (rest === "state") kind = "room";
    this.dispatchEvent(new CustomEvent(kind, { detail: data }));
  }

  _reply(msg) {
    const waiting = this.pending.get(msg.action);
    if (!waiting || waiting.length === 0) return;
    const entry = waiting.shift();
    clearTimeout(entry.timer);
    if (msg.status) entry.resolve(msg.result === undefined ? null : msg.result);
    else entry.reject(new Error(msg.error || `${msg.action} was refused`));
  }

  /** Send one command; resolves with its result, rejects with the server's error text. */
  command(action, fields = {}) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new Error("Not connected to the session right now; wait for “Live” and try again."));
        return;
      }
      const timer = setTimeout(() => {
        const waiting = this.pending.get(action) || [];
        const at = waiting.findIndex((e) => e.timer === timer);
        if (at >= 0) waiting.splice(at, 1);
        reject(new Error(`No answer to “${action}” from the coordinator.`));
      }, COMMAND_TIMEOUT_MS);
      if (!this.pending.has(action)) this.pending.set(action, []);
      this.pending.get(action).push({ resolve, reject, timer });
      ws.send(JSON.stringify({ action, ...fields }));
    });
  }

  _failPending(reason) {
    for (const waiting of this.pending.values()) {
      for (const e of waiting) {
        clearTimeout(e.timer);
        e.reject(new Error(reason));
      }
    }
    this.pending.clear();
  }

  _reauth() {
    // A refreshed credential: tell the balancer on the open socket (it keeps the seat).
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.auth.token) {
      this.command("auth", { token: this.auth.token }).catch(() => {});
    }
  }

  _closed(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    this._failPending("the connection to the session closed");
    if (this.stopped) return;
    const reason = (this.closeInfo && this.closeInfo.reason) || ev.reason || "";
    if (FATAL[ev.code]) {
      this._set("failed", reason ? `${FATAL[ev.code]} (${reason})` : FATAL[ev.code]);
      return;
    }
    if (ev.code === 4001) {
      if (this.authRetried || !this.auth.token) {
        this._set("failed", `The coordinator refused the credential: ${reason || "expired or unknown"}. Sign in again.`);
        return;
      }
      this.authRetried = true;
      this._set("reconnecting", "Credential refused; refreshing it…");
      this.auth.refresh().then(() => this._later(0), () => this._later(RETRY_MIN_MS));
      return;
    }
    if (ev.code === 4003) {
      this._set("suspended", "The session is suspended; waiting for it to be resumed…");
      this._later(SUSPENDED_RETRY_MS);
      return;
    }
    const why = ev.code === 1001 ? "the coordinator is restarting" : "connection lost";
    this._set("reconnecting", `Reconnecting (${why})…`);
    this._later(this.retry);
    this.retry = Math.min(RETRY_MAX_MS, this.retry * 2);
  }

  _later(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), ms);
  }
}
