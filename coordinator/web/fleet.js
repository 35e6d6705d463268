// The fleet overview: the landing page of admins and show admins. Every session of the shows the
// credential oversees (GET /sessions), and for each live one its kiosks (link state and since
// when, version, disc cache), its burners (state, the image by name, progress) and its queue, kept
// current over the same client WebSocket the live view uses (one LiveSession per live session).
// Suspended sessions are listed without a socket; the page links to each session's live view.
// While a session is live its card also shows how the show's kiosks share images on their LAN
// (GET /shows/{id}/swarm, polled): each kiosk's chunks and where its bytes came from, and the
// peers kiosks banned for serving bad chunks.

import { LiveSession } from "./live.js";
import { bytes, clock, h, replace } from "./ui.js";

const SHARING_POLL_MS = 3000;

/** A burner's status in words (the live view's cards use the same). */
export const STATE_TEXT = {
  IDLE: "Idle",
  MD5PASS: "Verified",
  MD5FAIL: "Verify failed",
  TRAYOPEN: "Tray open",
  AVAIL: "Blank disc ready",
  EMPTY: "No disc",
};

/** A burner's state as [kind, words] (kind drives the colour, words are what a person reads). */
export function burnerState(b) {
  if (!b.connected) return ["offline", "Offline"];
  const s = b.status;
  if (!s) return ["idle", "Waiting for status"];
  if (/^\d+%$/.test(s)) return ["burning", `Burning ${s}`];
  const kind = { MD5PASS: "pass", MD5FAIL: "fail", TRAYOPEN: "tray" }[s] || "idle";
  return [kind, STATE_TEXT[s] || s];
}

/** A kiosk's link in words: online, reconnecting, or offline since a time. */
export function linkText(k) {
  if (k.link === "online") return "online";
  if (k.link === "reconnecting") return "reconnecting";
  return k.since ? `offline since ${clock(k.since * 1000)}` : "offline";
}

/** Burners in a stable order: by kiosk name, then burner name, then uid. */
export function burnerOrder(kioskName) {
  return (a, b) =>
    kioskName(a).localeCompare(kioskName(b)) ||
    (a.name || "").localeCompare(b.name || "") ||
    a.uid.localeCompare(b.uid);
}

/** One kiosk's share of one image in words: [how far it is, where its bytes came from]. */
export function shareText(image, k) {
  const done = k.chunks === k.count;
  return [
    `image ${image.sha256.slice(0, 12)}…: ${done ? "complete" : `${k.chunks} of ${k.count} chunks`}`,
    `${bytes(k.peer_bytes)} from kiosks, ${bytes(k.origin_bytes)} from the coordinator`,
  ];
}

class SessionCard {
  constructor(session, showName, auth) {
    this.s = session;
    this.auth = auth;
    this.kiosks = new Map(); // id -> kiosk
    this.burners = new Map(); // uid -> burner
    this.queue = [];
    this.live = null;
    this.conn = h("span", { class: "conn", role: "status" });
    this.meta = h("p", { class: "fleet-meta" });
    this.kioskList = h("ul", { class: "fleet-kiosks", "aria-label": `Kiosks of ${session.name}` });
    this.burnerList = h("ul", { class: "fleet-burners", "aria-label": `Burners of ${session.name}` });
    this.sharing = h("div", { class: "fleet-sharing", "aria-label": `Image sharing of ${session.name}` });
    this.sharingTimer = null;
    const headId = `fleet-h-${session.id}`;
    this.el = h(
      "section",
      { class: "fleet-session card", dataset: { session: session.id, state: session.state }, "aria-labelledby": headId },
      h(
        "header",
        { class: "fleet-head" },
        h("h2", { id: headId }, session.state === "live" ? h("a", { href: `#/live/${session.id}/display` }, session.name) : session.name),
        h("span", { class: `badge ${session.state}` }, session.state),
        showName ? h("span", { class: "muted" }, showName) : null,
        session.state === "live" ? this.conn : null,
      ),
      this.meta,
      h("h3", {}, "Kiosks"),
      this.kioskList,
      h("h3", {}, "Burners"),
      this.burnerList,
      this.sharing,
    );
    this.render();
  }

  async pollSharing() {
    try {
      this.renderSharing(await this.auth.get(`/shows/${this.s.show_id}/swarm`));
    } catch {
      // Not this credential's to see, or the coordinator is away: the next poll tries again.
    }
  }

  /** Which kiosk holds how much of which image, and from where its bytes came. */
  renderSharing(view) {
    const rows = [];
    for (const image of view.images || []) {
      for (const k of image.kiosks) {
        const [progress, sources] = shareText(image, k);
        rows.push(
          h(
            "li",
            { class: "fleet-share", dataset: { kiosk: String(k.appliance), sha256: image.sha256 } },
            h("strong", { class: "kiosk-name" }, k.name || `Kiosk ${k.appliance}`),
            h("span", { class: "share-progress" }, progress),
            h("span", { class: "share-sources muted" }, sources),
          ),
        );
      }
    }
    const reports = (view.reports || []).map((r) =>
      h("li", { class: "fleet-share-report" }, `${r.reporter} banned the peer at ${r.peer}: ${r.reason}`),
    );
    replace(
      this.sharing,
      rows.length || reports.length
        ? [
            h("h3", {}, "Image sharing"),
            h("ul", { class: "fleet-shares" }, rows),
            reports.length ? h("ul", { class: "fleet-share-reports", "aria-label": "Bad peers" }, reports) : null,
          ]
        : [],
    );
  }

  start() {
    if (this.s.state !== "live") return;
    const live = new LiveSession(this.s.id, this.auth);
    this.live = live;
    live.addEventListener("state", (ev) => {
      this.conn.className = `conn ${ev.detail.state}`;
      this.conn.textContent = ev.detail.text;
    });
    live.addEventListener("snapshot", (ev) => {
      const room = ev.detail || {};
      this.kiosks = new Map((room.kiosks || []).map((k) => [String(k.id), k]));
      this.burners = new Map((room.burners || []).map((b) => [b.uid, b]));
      this.queue = room.queue || [];
      this.render();
    });
    live.addEventListener("kiosk", (ev) => {
      this.kiosks.set(String(ev.detail.id), ev.detail);
      this.render();
    });
    live.addEventListener("burner", (ev) => {
      this.burners.set(ev.detail.uid, ev.detail);
      this.render();
    });
    live.addEventListener("queue", (ev) => {
      this.queue = ev.detail.queue || [];
      this.render();
    });
    live.addEventListener("members", () => this.refreshMembers());
    live.addEventListener("expiring", () => this.auth.refresh().catch(() => {}));
    live.start();
    this.pollSharing();
    this.sharingTimer = setInterval(() => this.pollSharing(), SHARING_POLL_MS);
  }

  stop() {
    if (this.live) this.live.stop();
    this.live = null;
    if (this.sharingTimer !== null) clearInterval(this.sharingTimer);
    this.sharingTimer = null;
  }

  async refreshMembers() {
    try {
      this.s = await this.auth.get(`/sessions/${this.s.id}`);
      this.render();
    } catch {
      // The count stays as it was; the next change tries again.
    }
  }

  kioskOf(uid) {
    for (const k of this.kiosks.values()) if ((k.burners || []).includes(uid)) return k;
    return null;
  }

  imageName(b) {
    if (b.image) return b.image;
    if (!b.job) return null;
    const k = this.kioskOf(b.uid);
    const cached = k && (k.images || []).find((i) => i.md5 === b.job.toLowerCase());
    return cached && cached.name ? cached.name : `${b.job.slice(0, 8)}…`;
  }

  render() {
    const queued = this.queue.reduce((n, q) => n + (q.count || 0), 0);
    const members = `${this.s.members} member${this.s.members === 1 ? "" : "s"}`;
    const queue = this.s.state === "live" ? ` · ${queued} disc${queued === 1 ? "" : "s"} queued` : "";
    const since = this.s.state === "suspended" && this.s.suspended_at ? ` · suspended ${new Date(this.s.suspended_at).toLocaleString()}` : "";
    this.meta.textContent = `${members}${queue}${since}`;
    const kiosks = [...this.kiosks.values()].sort((a, b) => (a.name || "").localeCompare(b.name || "") || a.id - b.id);
    replace(
      this.kioskList,
      kiosks.length
        ? kiosks.map((k) => {
            const n = (k.images || []).length;
            const fill = k.cache_used !== null && k.cache_used !== undefined && k.cache_max ? `, ${bytes(k.cache_used)} of ${bytes(k.cache_max)}` : "";
            return h(
              "li",
              { class: "fleet-kiosk", dataset: { kiosk: String(k.id), link: k.link } },
              h("strong", { class: "kiosk-name" }, k.name || `Kiosk ${k.id}`),
              h("span", { class: "kiosk-link", title: k.since ? new Date(k.since * 1000).toLocaleString() : "" }, linkText(k)),
              h("span", { class: "muted" }, k.version ? `version ${k.version}` : "version unknown"),
              h("span", { class: "muted" }, `cache: ${n} image${n === 1 ? "" : "s"}${fill}`),
            );
          })
        : h("li", { class: "muted" }, this.s.state === "live" ? "No kiosk has linked into this session yet." : "—"),
    );
    const kioskName = (b) => {
      const k = this.kioskOf(b.uid);
      // Burners of the burn-protocol listener have no kiosk: they sort last.
      return k ? k.name || `Kiosk ${k.id}` : "\uffff";
    };
    const burners = [...this.burners.values()].sort(burnerOrder(kioskName));
    replace(
      this.burnerList,
      burners.length
        ? burners.map((b) => {
            const [kind, text] = burnerState(b);
            const pct = kind === "burning" ? Number(b.status.slice(0, -1)) : kind === "pass" ? 100 : 0;
            const image = this.imageName(b);
            const k = this.kioskOf(b.uid);
            const label = b.name || `Burner ${b.uid.slice(0, 6)}`;
            // The page's CSP refuses style attributes; a property set from script is allowed.
            const fill = h("span", { class: "fill" });
            fill.style.width = `${pct}%`;
            return h(
              "li",
              { class: "fleet-burner", dataset: { uid: b.uid, state: kind } },
              h("span", { class: "fleet-who" }, h("strong", { class: "name" }, label), k ? h("span", { class: "muted" }, ` on ${k.name || `Kiosk ${k.id}`}`) : null),
              h("span", { class: "state" }, text),
              h("span", { class: "image" }, image ? image : "—"),
              h(
                "div",
                { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct, "aria-label": `Progress of ${label}` },
                fill,
              ),
            );
          })
        : h("li", { class: "muted" }, this.s.state === "live" ? "No burners yet." : "—"),
    );
  }
}

/** The fleet view; returns {el, dispose} for the dashboard's router. */
export async function fleetView(auth) {
  const [sessions, shows] = await Promise.all([auth.all("/sessions"), auth.all("/shows")]);
  const showNames = new Map(shows.map((s) => [s.id, s.name]));
  const cards = sessions.map((s) => new SessionCard(s, shows.length > 1 ? showNames.get(s.show_id) : null, auth));
  for (const c of cards) c.start();
  const live = sessions.filter((s) => s.state === "live").length;
  const el = h(
    "section",
    { class: "panel fleet", id: "fleet" },
    h("h1", {}, "Fleet"),
    h(
      "p",
      { class: "hint" },
      sessions.length
        ? `${live} live session${live === 1 ? "" : "s"} of ${sessions.length}, with their kiosks and burners as they change. Open a session by its name for the full live view.`
        : "No sessions yet. A contributor creates one (Sessions), and kiosks join it when they link.",
    ),
    h("div", { class: "fleet-grid" }, cards.map((c) => c.el)),
  );
  return { el, dispose: () => cards.forEach((c) => c.stop()) };
}
