// The live display and command view of one session over the client WebSocket: the burner wall
// (wall.js), the queue with its time estimate, the statistics and throughput chart, and the
// command panel. It follows the room through `LiveSession` (live.js) events.

import { LiveSession } from "./live.js";
import { auth } from "./shell.js";
import { loadCatalog } from "./catalog.js";
import { BurnerWall } from "./wall.js";
import { bytes, duration, field, form, h, option, replace, speed, svg, toast, toastHost } from "./ui.js";

export const PAGE_TITLE = "burnstand dashboard";
const CHART_MINUTES = 20;
// Minutes of history the view keeps: "discs per hour" counts the last hour's discs.
const HOUR_MINUTES = 60;
const SHARING_POLL_MS = 3000;

export class LiveView extends BurnerWall {
  constructor(sid, tab) {
    super();
    this.sid = sid;
    this.tab = tab;
    this.session = new LiveSession(sid, auth);
    this.burners = new Map(); // uid -> model
    this.cards = new Map(); // uid -> card elements
    this.kiosks = new Map(); // appliance id -> what the room says of it
    this.groups = new Map(); // appliance id -> group elements
    this.queue = [];
    this.totals = { burned: 0, failed: 0 };
    this.buckets = new Map(); // minute (server time) -> {burned, failed}
    // Totals the chart has counted up to (those the history was read at, then each `stats`
    // message); null until the history arrives. The last `stats` message, for the race of a
    // result counted after the history was read but told before it arrived.
    this.chartTotals = null;
    this.lastStats = null;
    this.takes = new Map(); // md5 -> take
    this.name = null;
  }

  async init() {
    const role = auth.role;
    const showIds = role === "admin" ? (await auth.all("/shows")).map((s) => s.id) : [auth.me.show_id];
    const tasks = showIds.map(async (id) => {
      const episodes = await loadCatalog(id);
      for (const e of episodes) for (const q of e.sequences) for (const s of q.shots) for (const t of s.takes) {
        this.takes.set(t.md5.toLowerCase(), { ...t, path: `${e.name} › ${q.name}` });
      }
    });
    // The session's name heads the page and the browser tab; its id is small print.
    tasks.push(
      auth.get(`/sessions/${encodeURIComponent(this.sid)}`).then(
        (s) => {
          this.name = s.name;
          this.showId = s.show_id;
        },
        () => null,
      ),
    );
    await Promise.all(tasks);
    this.build();
    for (const kind of ["snapshot", "burner", "kiosk", "queue", "stats", "room"]) {
      this.session.addEventListener(kind, (ev) => this[`on_${kind}`](ev.detail));
    }
    this.session.addEventListener("state", (ev) => this.onConnection(ev.detail));
    this.session.addEventListener("expiring", () => auth.refresh().catch(() => {}));
    this.session.start();
    if (this.showId !== undefined) {
      // How the show's kiosks share images on their LAN, beside each kiosk's burners.
      this.pollSharing();
      this.sharingTimer = setInterval(() => this.pollSharing(), SHARING_POLL_MS);
    }
  }

  async pollSharing() {
    try {
      this.renderSharing(await auth.get(`/shows/${this.showId}/swarm`));
    } catch {
      // Not this credential's to see, or the coordinator is away: the next poll tries again.
    }
  }

  dispose() {
    document.title = PAGE_TITLE;
    this.session.stop();
    clearInterval(this.ticker);
    clearInterval(this.sharingTimer);
  }

  setTab(tab) {
    this.tab = tab;
    this.el.dataset.tab = tab;
    for (const a of this.tabs.querySelectorAll("a")) {
      a.setAttribute("aria-current", a.dataset.tab === tab ? "page" : "false");
    }
  }

  build() {
    const sid = this.sid;
    this.conn = h("span", { class: "conn connecting", role: "status", id: "conn" }, "Connecting…");
    this.tabs = h(
      "nav",
      { class: "tabs", "aria-label": "Live views" },
      h("a", { href: `#/live/${sid}/display`, dataset: { tab: "display" } }, "Display"),
      h("a", { href: `#/live/${sid}/command`, dataset: { tab: "command" } }, "Command"),
    );
    // Burners are grouped by the kiosk (appliance) they belong to; burn-protocol TCP burners,
    // which have no kiosk, come last under "Other burners".
    this.wall = h("div", { class: "kiosk-groups", id: "wall", "aria-live": "off" });
    this.other = this.makeGroup("other", "Other burners");
    this.other.root.hidden = true;
    this.wall.appendChild(this.other.root);
    this.empty = h("p", { class: "muted", id: "no-burners" }, "No burners in this session yet. They appear here as kiosks connect.");
    this.queueList = h("ol", { class: "queue", id: "queue" });
    this.queueEmpty = h("p", { class: "muted" }, "The queue is empty.");
    this.etaLine = h("p", { class: "eta", id: "queue-eta", "aria-live": "polite" });
    this.perHour = h("p", { class: "per-hour", id: "per-hour" });
    const exportCsv = h("button", { type: "button", id: "export-csv", onclick: () => this.exportCsv() }, "Export CSV");
    this.statsBody = h("tbody", {});
    this.statsFoot = h("tfoot", {});
    this.chart = h("figure", { class: "chart", id: "throughput" });
    this.banner = h("p", { class: "banner", role: "alert", hidden: true });
    const commands = this.commandPanel();
    this.el = h(
      "section",
      { class: "live", dataset: { tab: this.tab } },
      h(
        "div",
        { class: "live-head" },
        h("h1", {}, this.name || "Live session", " ", h("small", { class: "uid", id: "session-id", title: "Session id" }, sid)),
        this.conn,
        this.tabs,
      ),
      this.banner,
      commands,
      h(
        "div",
        { class: "live-grid" },
        h("section", { class: "burners", "aria-labelledby": "burners-h" }, h("h2", { id: "burners-h" }, "Burners"), this.empty, this.wall, toastHost()),
        h(
          "aside",
          { class: "side" },
          h("section", { "aria-labelledby": "queue-h" }, h("h2", { id: "queue-h" }, "Queue"), this.queueEmpty, this.etaLine, this.queueList),
          h(
            "section",
            { "aria-labelledby": "stats-h" },
            h("h2", { id: "stats-h" }, "Statistics"),
            h("table", { class: "data stats", id: "stats" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Burner"), h("th", { scope: "col", class: "num" }, "Burned"), h("th", { scope: "col", class: "num" }, "Failed"), h("th", { scope: "col", class: "num" }, "Mean speed"))), this.statsBody, this.statsFoot),
            this.perHour,
            this.chart,
            h("div", { class: "actions" }, exportCsv),
          ),
        ),
      ),
    );
    document.title = `${this.name || `Session ${sid}`} · ${PAGE_TITLE}`;
    this.setTab(this.tab);
    this.renderQueue();
    this.renderStats();
    this.renderChart();
    // Relative times ("offline for 2 min") and the chart's time axis move on their own.
    this.ticker = setInterval(() => {
      for (const uid of this.burners.keys()) this.renderCard(uid);
      for (const id of this.kiosks.keys()) this.renderKiosk(id);
      this.renderChart();
    }, 15_000);
  }

  commandPanel() {
    const takes = [...this.takes.values()].sort((a, b) => a.name.localeCompare(b.name));
    this.queueForm = form(
      { class: "inline", id: "queue-form" },
      [
        field("Image (take)", { name: "md5", type: "select", options: takes.map((t) => option(t.md5, `${t.name} (${bytes(t.size)})`)) }),
        field("Copies", { name: "count", type: "number", min: 1, max: 1024, value: 1, required: true }),
      ],
      "Queue",
      async (v) => {
        const count = Number(v.count);
        if (!Number.isInteger(count) || count < 1 || count > 1024) throw new Error("Copies must be a whole number from 1 to 1024.");
        if (!v.md5) throw new Error("This show has no takes to burn yet.");
        await this.session.command("queue", { md5: v.md5, count });
        toast(`Queued ${count} × ${this.imageName(v.md5)}.`);
      },
    );
    const clear = h("button", {
      type: "button",
      class: "danger",
      id: "qclear",
      onclick: async () => {
        try {
          await this.session.command("qclear");
          toast("Queue cleared.");
        } catch (err) {
          toast(err.message, "error");
        }
      },
    }, "Clear queue");
    return h(
      "section",
      { class: "cmd command-panel card", "aria-labelledby": "command-h" },
      h("h2", { id: "command-h" }, "Command"),
      h("p", { class: "hint" }, "Queue discs for the next free burner that can burn them; open a tray to find a box; cancel a burn, keep a burner to common images, or rename it below."),
      this.queueForm,
      h("div", { class: "actions" }, clear),
    );
  }

  imageName(md5) {
    if (!md5) return "—";
    const t = this.takes.get(md5.toLowerCase());
    return t ? t.name : `${md5.slice(0, 8)}…`;
  }

  onConnection({ state, text }) {
    this.conn.className = `conn ${state}`;
    this.conn.textContent = text;
    if (state === "failed" || state === "suspended") {
      this.banner.textContent = text;
      this.banner.hidden = false;
    } else if (state === "live") {
      this.banner.hidden = true;
    }
  }

  // ---- model updates -------------------------------------------------------------------

  on_snapshot(room) {
    this.queue = room.queue || [];
    this.totals = room.totals || this.totals;
    const kiosks = new Set();
    for (const k of room.kiosks || []) {
      kiosks.add(String(k.id));
      this.kiosks.set(String(k.id), k);
    }
    for (const id of [...this.kiosks.keys()]) {
      if (!kiosks.has(id)) {
        this.kiosks.delete(id);
        const g = this.groups.get(id);
        if (g) g.root.remove();
        this.groups.delete(id);
      }
    }
    for (const id of this.kiosks.keys()) this.renderKiosk(id);
    const seen = new Set();
    for (const b of room.burners || []) {
      seen.add(b.uid);
      this.updateBurner(b, b.stats);
    }
    for (const uid of [...this.burners.keys()]) {
      if (!seen.has(uid)) {
        this.burners.delete(uid);
        const card = this.cards.get(uid);
        if (card) card.root.remove();
        this.cards.delete(uid);
      }
    }
    this.refreshGroups();
    if (room.suspended) this.on_room({ state: "suspended" });
    this.renderQueue();
    this.renderStats();
    this.loadHistory();
  }

  async loadHistory() {
    // The chart and "discs per hour" start from the master's history, so a reload, a second
    // operator or the wall screen shows what the first browser saw; `stats` messages add to it.
    const since = (Math.floor(Date.now() / 60_000) - HOUR_MINUTES) * 60;
    let hist;
    try {
      hist = await this.session.command("history", { span: "minute", since });
    } catch {
      return; // the chart keeps what it has; the next snapshot asks again
    }
    this.buckets = new Map();
    for (const r of hist.rows) {
      if (r.kind === "burner") this.addToChart(r.start, r.burned, r.failed); // kiosk rows count the same discs again
    }
    const base = hist.totals || this.totals;
    const last = this.lastStats;
    if (last && last.totals.burned + last.totals.failed > base.burned + base.failed) {
      // Counted after the rows were read, but told to this page before they arrived.
      this.addToChart(last.at, last.totals.burned - base.burned, last.totals.failed - base.failed);
      this.chartTotals = last.totals;
    } else {
      this.chartTotals = base;
    }
    this.renderChart();
  }

  addToChart(at, burned, failed) {
    if (burned <= 0 && failed <= 0) return;
    const minute = Math.floor(at / 60);
    const bucket = this.buckets.get(minute) || { burned: 0, failed: 0 };
    bucket.burned += Math.max(0, burned);
    bucket.failed += Math.max(0, failed);
    this.buckets.set(minute, bucket);
  }

  async exportCsv() {
    try {
      const blob = await auth.blob(`/sessions/${encodeURIComponent(this.sid)}/history.csv?span=minute`);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `burnstand-${this.sid}-minute.csv` });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      toast(err.message, "error");
    }
  }

  on_burner(data) {
    this.updateBurner(data, null);
    this.renderStats();
    this.renderQueue(); // a burner that comes or goes moves the queue's ETA
  }

  on_kiosk(data) {
    const id = String(data.id);
    const before = this.kiosks.get(id);
    this.kiosks.set(id, data);
    this.renderKiosk(id);
    // Burners that joined or left this kiosk move between groups.
    const moved = new Set([...(before ? before.burners : []), ...(data.burners || [])]);
    for (const uid of moved) if (this.burners.has(uid)) this.renderCard(uid);
  }

  on_queue(data) {
    this.queue = data.queue || [];
    this.renderQueue();
  }

  on_stats(data) {
    const b = this.burners.get(data.uid);
    if (b && data.burner) b.stats = data.burner;
    if (data.totals) {
      // The master says when it counted the result: every browser puts it in the same minute.
      const at = typeof data.at === "number" ? data.at : Date.now() / 1000;
      const seen = this.chartTotals;
      if (seen) {
        this.addToChart(at, data.totals.burned - seen.burned, data.totals.failed - seen.failed);
        this.chartTotals = { burned: Math.max(seen.burned, data.totals.burned), failed: Math.max(seen.failed, data.totals.failed) };
      }
      this.lastStats = { totals: data.totals, at };
      this.totals = data.totals;
    }
    if (b) this.renderCard(data.uid);
    this.renderStats();
    this.renderQueue(); // a new measured speed moves the queue's ETA
    this.renderChart();
  }

  on_room(data) {
    if (data.state === "suspended" || data.state === "unloaded") {
      this.banner.textContent = `This session is ${data.state}. The view comes back by itself when it is resumed.`;
      this.banner.hidden = false;
    } else if (data.state === "live") {
      this.banner.hidden = true;
    }
  }

  updateBurner(data, stats) {
    const now = Date.now();
    const prev = this.burners.get(data.uid);
    const b = prev || { uid: data.uid, lastResult: null, speedNow: null, speeds: [], offlineSince: null, progress: null };
    const status = data.status || null;
    const pct = status && /^\d+%$/.test(status) ? Number(status.slice(0, -1)) : null;
    if (pct !== null) {
      const t = this.takes.get((data.job || "").toLowerCase());
      if (b.progress && b.progress.job === data.job && t && pct > b.progress.pct) {
        const secs = (now - b.progress.at) / 1000;
        if (secs > 0) {
          b.speedNow = (((pct - b.progress.pct) / 100) * t.size) / secs;
          b.speeds = [...b.speeds, b.speedNow].slice(-40);
        }
      }
      if (!b.progress || b.progress.job !== data.job || pct !== b.progress.pct) {
        b.progress = { job: data.job, pct, at: now };
      }
    }
    if ((status === "MD5PASS" || status === "MD5FAIL") && b.status !== status) {
      b.lastResult = { ok: status === "MD5PASS", job: data.job || (b.progress && b.progress.job), at: prev ? now : null };
    }
    if (pct === null && status !== "MD5PASS") b.speedNow = null;
    if (data.connected === false && (b.connected !== false)) b.offlineSince = now;
    if (data.connected) b.offlineSince = null;
    Object.assign(b, {
      name: data.name || "",
      connected: Boolean(data.connected),
      status,
      job: data.job || null,
      capabilities: data.capabilities || [],
      images: data.images || [],
      commonOnly: Boolean(data.common_only),
      failure: data.failure || null, // the last burn's failure: a sentence, the tool's detail
      image: data.image || null,
    });
    if (stats) b.stats = stats;
    if (!b.stats) b.stats = { burned: 0, failed: 0, recent_failures: 0, mean_speed: null };
    this.burners.set(data.uid, b);
    this.renderCard(data.uid);
  }

  // ---- queue, statistics and chart ------------------------------------------------------

  queueEta() {
    // Seconds until the queue is burned, from the measured speed (image bytes per second of
    // write and verify) of the connected burners that hold each image; null when a queued
    // image has no such burner yet, or its size is unknown.
    let seconds = 0;
    for (const q of this.queue) {
      const take = this.takes.get(q.md5.toLowerCase());
      const able = [...this.burners.values()].filter((b) => b.connected && b.images.includes(q.md5) && b.stats.mean_speed);
      if (!take || !able.length) return null;
      const rate = able.reduce((n, b) => n + b.stats.mean_speed, 0);
      seconds += (q.count * take.size) / rate;
    }
    return seconds;
  }

  renderQueue() {
    this.queueEmpty.hidden = this.queue.length > 0;
    const discs = this.queue.reduce((n, q) => n + q.count, 0);
    const eta = discs ? this.queueEta() : null;
    this.etaLine.hidden = !discs;
    const many = `${discs} disc${discs === 1 ? "" : "s"}`;
    this.etaLine.textContent = eta === null
      ? `${many} waiting; no time estimate yet (no connected burner that can take them has finished a disc)`
      : `${many} waiting, done in about ${duration(Math.max(60, eta))} at the burners' measured speed`;
    replace(
      this.queueList,
      this.queue.map((q, i) =>
        h(
          "li",
          {},
          h("span", { class: "count" }, `${q.count} ×`),
          " ",
          this.imageName(q.md5),
          i > 0
            ? h("button", {
                type: "button",
                class: "cmd move-first",
                "aria-label": `Burn ${this.imageName(q.md5)} next`,
                onclick: async () => {
                  try {
                    await this.session.command("reorder", { md5: q.md5, position: 0 });
                    toast(`${this.imageName(q.md5)} moves to the front of the queue.`);
                  } catch (err) {
                    toast(err.message, "error");
                  }
                },
              }, "Burn next")
            : null,
        ),
      ),
    );
  }

  renderStats() {
    const rows = [...this.burners.values()].map((b) =>
      h("tr", {}, h("th", { scope: "row" }, this.label(b)), h("td", { class: "num" }, String(b.stats.burned)), h("td", { class: "num" }, String(b.stats.failed)), h("td", { class: "num" }, speed(b.stats.mean_speed))),
    );
    replace(this.statsBody, rows);
    replace(this.statsFoot, h("tr", {}, h("th", { scope: "row" }, "Session"), h("td", { class: "num", id: "total-burned" }, String(this.totals.burned)), h("td", { class: "num", id: "total-failed" }, String(this.totals.failed)), h("td", {})));
  }

  renderChart() {
    const now = Math.floor(Date.now() / 60_000);
    const w = 300;
    const hgt = 80;
    const barW = w / CHART_MINUTES;
    let max = 1;
    const data = [];
    for (let i = CHART_MINUTES - 1; i >= 0; i -= 1) {
      const b = this.buckets.get(now - i) || { burned: 0, failed: 0 };
      data.push(b);
      max = Math.max(max, b.burned + b.failed);
    }
    for (const key of [...this.buckets.keys()]) if (key <= now - HOUR_MINUTES) this.buckets.delete(key);
    let hour = 0;
    for (const [key, b] of this.buckets) if (key > now - HOUR_MINUTES) hour += b.burned;
    replace(this.perHour, h("strong", { id: "discs-per-hour" }, String(hour)), ` disc${hour === 1 ? "" : "s"} per hour (burned in the last ${HOUR_MINUTES} minutes)`);
    const bars = [];
    data.forEach((b, i) => {
      const x = i * barW + 1;
      const okH = (b.burned / max) * (hgt - 14);
      const badH = (b.failed / max) * (hgt - 14);
      if (b.burned) bars.push(svg("rect", { x, y: hgt - 12 - okH, width: barW - 2, height: okH, class: "ok" }, svg("title", {}, `${b.burned} burned`)));
      if (b.failed) bars.push(svg("rect", { x, y: hgt - 12 - okH - badH, width: barW - 2, height: badH, class: "bad" }, svg("title", {}, `${b.failed} failed`)));
    });
    const total = data.reduce((n, b) => n + b.burned, 0);
    const chart = svg(
      "svg",
      { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-labelledby": "chart-cap" },
      svg("line", { x1: 0, y1: hgt - 12, x2: w, y2: hgt - 12, class: "axis" }),
      ...bars,
      svg("text", { x: 0, y: hgt - 1, class: "tick" }, `−${CHART_MINUTES} min`),
      svg("text", { x: w, y: hgt - 1, class: "tick end" }, "now"),
    );
    replace(this.chart, chart, h("figcaption", { id: "chart-cap" }, `Throughput: ${total} disc${total === 1 ? "" : "s"} burned in the last ${CHART_MINUTES} minutes (per minute; failures in red).`));
  }
}
