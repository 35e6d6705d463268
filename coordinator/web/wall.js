// The burner wall of the live view: one group per kiosk (its name, version, link and disc cache)
// holding a card per burner (state, progress, last result, speed and its commands), and
// "Other burners" for burn-protocol TCP burners of no kiosk. `LiveView` (liveview.js) builds on it.

import { STATE_TEXT, linkText, shareText } from "./fleet.js";
import { bytes, clock, duration, form, h, mediaName, replace, speed, svg, toast } from "./ui.js";

// Images of a kiosk's cache listed by name; the rest are counted.
const CACHE_SHOWN = 12;

export class BurnerWall {
  label(b) {
    return b.name || `Burner ${b.uid.slice(0, 6)}`;
  }

  stateOf(b) {
    if (!b.connected) return ["offline", b.offlineSince ? `Offline for ${duration((Date.now() - b.offlineSince) / 1000)}` : "Offline"];
    const s = b.status;
    if (!s) return ["idle", "Waiting for status"];
    if (/^\d+%$/.test(s)) return ["burning", `Burning ${s}`];
    const kind = { MD5PASS: "pass", MD5FAIL: "fail", TRAYOPEN: "tray" }[s] || "idle";
    return [kind, STATE_TEXT[s] || s];
  }

  kioskOf(uid) {
    for (const k of this.kiosks.values()) if ((k.burners || []).includes(uid)) return k;
    return null;
  }

  linkText(k) {
    return linkText(k);
  }

  makeGroup(id, title) {
    const g = {};
    const headId = `kiosk-h-${id}`;
    g.title = h("h3", { id: headId, class: "kiosk-name" }, title);
    g.version = h("span", { class: "kiosk-version" });
    g.link = h("span", { class: "kiosk-link", role: "status" });
    g.cacheHead = h("p", { class: "cache-head" });
    g.cache = h("ul", { class: "cache", "aria-label": `Disc cache of ${title}` });
    g.cacheBox = h("div", { class: "kiosk-cache" }, g.cacheHead, g.cache);
    // Images this kiosk fetches from (or serves to) the show's other kiosks: `renderSharing`.
    g.sharing = h("ul", { class: "kiosk-sharing", "aria-label": `Image sharing of ${title}` });
    g.none = h("p", { class: "muted no-drives" }, "No burners on this kiosk right now.");
    g.body = h("div", { class: "wall-grid kiosk-burners" });
    g.root = h(
      "section",
      { class: "kiosk", dataset: { kiosk: id }, "aria-labelledby": headId },
      h("header", { class: "kiosk-head" }, g.title, g.version, g.link),
      g.cacheBox,
      g.sharing,
      g.none,
      g.body,
    );
    if (id === "other") {
      g.version.hidden = g.link.hidden = g.cacheBox.hidden = g.none.hidden = g.sharing.hidden = true;
    }
    return g;
  }

  renderKiosk(id) {
    const k = this.kiosks.get(id);
    if (!k) return;
    let g = this.groups.get(id);
    if (!g) {
      g = this.makeGroup(id, "");
      this.groups.set(id, g);
      // Kiosks in id order, "Other burners" always last.
      const after = [...this.groups.keys()].filter((other) => Number(other) > Number(id)).sort((a, b) => Number(a) - Number(b))[0];
      this.wall.insertBefore(g.root, after ? this.groups.get(after).root : this.other.root);
    }
    const name = k.name || `Kiosk ${id}`;
    g.title.textContent = name;
    g.version.textContent = k.version ? `version ${k.version}` : "version unknown";
    g.link.textContent = this.linkText(k);
    g.link.title = k.since ? new Date(k.since * 1000).toLocaleString() : "";
    g.root.dataset.link = k.link;
    g.cache.setAttribute("aria-label", `Disc cache of ${name}`);
    const images = k.images || [];
    const used = k.cache_used !== null && k.cache_used !== undefined ? bytes(k.cache_used) : null;
    const max = k.cache_max ? bytes(k.cache_max) : null;
    const fill = used && max ? ` — ${used} of ${max} used` : used ? ` — ${used} used` : "";
    g.cacheHead.textContent = images.length
      ? `Disc cache: ${images.length} image${images.length === 1 ? "" : "s"}${fill}`
      : `Disc cache: empty${fill}`;
    // A box may cache hundreds of images: the first few by name, the rest counted.
    const shown = images.slice(0, CACHE_SHOWN);
    const more = images.length - shown.length;
    replace(
      g.cache,
      shown.map((img) => {
        const take = this.takes.get(img.md5);
        const label = (take && take.name) || img.name;
        const size = (take && take.size) || img.size;
        return h(
          "li",
          { dataset: { md5: img.md5 }, title: img.md5 },
          label ? label : h("code", {}, img.md5),
          size ? h("span", { class: "muted" }, ` (${bytes(size)})`) : null,
        );
      }),
      more > 0 ? h("li", { class: "muted more" }, `and ${more} more`) : null,
    );
    this.refreshGroups();
  }

  /** The show's swarm view (GET /shows/{id}/swarm): each kiosk's group says how far it is with
   * each image it shares and where its bytes came from, as the fleet page does. */
  renderSharing(view) {
    const lines = new Map(); // appliance id -> list items
    for (const image of view.images || []) {
      for (const k of image.kiosks) {
        const [progress, sources] = shareText(image, k);
        const items = lines.get(String(k.appliance)) || [];
        items.push(h("li", { class: "kiosk-share", dataset: { sha256: image.sha256 } }, `${progress} · `, h("span", { class: "share-sources muted" }, sources)));
        lines.set(String(k.appliance), items);
      }
    }
    for (const [id, g] of this.groups) {
      if (id !== "other") replace(g.sharing, lines.get(id) || []);
    }
  }

  renderCard(uid) {
    const b = this.burners.get(uid);
    let c = this.cards.get(uid);
    if (!c) {
      c = this.makeCard(uid);
      this.cards.set(uid, c);
    }
    const k = this.kioskOf(uid);
    const group = k ? this.groups.get(String(k.id)) : this.other;
    if (group && (c.root.parentNode !== group.body || c.root.dataset.label !== this.label(b))) {
      // Burners in a stable order within their kiosk: by name, then uid, whatever order they
      // joined or were renamed in.
      c.root.dataset.label = this.label(b);
      const key = (el) => `${el.dataset.label}\u0000${el.dataset.uid || ""}`;
      const mine = key(c.root);
      const next = [...group.body.children].find((el) => el !== c.root && key(el) > mine);
      group.body.insertBefore(c.root, next || null);
      this.refreshGroups();
    }
    this.empty.hidden = this.burners.size > 0 || this.kiosks.size > 0;
    const [kind, text] = this.stateOf(b);
    c.root.dataset.state = kind;
    c.name.textContent = this.label(b);
    c.state.textContent = text;
    const pct = kind === "burning" ? Number(b.status.slice(0, -1)) : kind === "pass" ? 100 : 0;
    c.bar.setAttribute("aria-valuenow", String(pct));
    c.bar.setAttribute("aria-valuetext", `${pct}%`);
    c.bar.setAttribute("aria-label", `Progress of ${this.label(b)}`);
    c.fill.style.width = `${pct}%`;
    c.pct.textContent = `${pct}%`;
    // The room names the image it burns; the catalog (or the digest) only when it does not.
    c.job.textContent = b.job ? b.image || this.imageName(b.job) : "—";
    c.speed.textContent = b.speedNow ? speed(b.speedNow) : b.stats && b.stats.mean_speed ? `${speed(b.stats.mean_speed)} avg` : "—";
    if (b.lastResult) {
      const r = b.lastResult;
      const f = b.failure;
      c.result.className = r.ok ? "ok" : "bad";
      if (!r.ok && f) {
        // One sentence an operator can act on; what the tool said is one tap away. Drawn once
        // per failure, so "Details" stays open while the card updates.
        const key = `${f.reason}|${f.detail}|${f.at}`;
        if (c.result.dataset.failure !== key) {
          c.result.dataset.failure = key;
          replace(
            c.result,
            h("span", { class: "sentence" }, `✗ ${f.sentence}`),
            h("details", { class: "tool" }, h("summary", {}, "Details"), h("code", {}, f.detail ? `${f.reason}: ${f.detail}` : f.reason)),
          );
        }
      } else {
        delete c.result.dataset.failure;
        c.result.textContent = `${r.ok ? "✓ Verified" : "✗ Verify failed"}${r.job ? ` — ${this.imageName(r.job)}` : ""}${r.at ? ` at ${clock(r.at)}` : ""}`;
      }
    } else {
      delete c.result.dataset.failure;
      c.result.textContent = "—";
      c.result.className = "";
    }
    c.discs.textContent = `${b.stats.burned} burned, ${b.stats.failed} failed${b.stats.cancelled ? `, ${b.stats.cancelled} cancelled` : ""}`;
    c.link.textContent =
      b.connected && k && k.link === "reconnecting"
        ? "reconnecting"
        : b.connected
          ? "online"
          : b.offlineSince
            ? `offline since ${clock(b.offlineSince)}`
            : "offline";
    c.media.textContent = b.capabilities.length ? b.capabilities.map(mediaName).join(", ") : "—";
    c.openBtn.disabled = !b.connected;
    c.openBtn.setAttribute("aria-label", `Open the tray of ${this.label(b)}`);
    c.cancelBtn.disabled = !b.connected || !b.job;
    c.cancelBtn.setAttribute("aria-label", `Cancel the burn on ${this.label(b)}`);
    c.commonBox.checked = Boolean(b.commonOnly);
    c.commonBox.setAttribute("aria-label", `Give ${this.label(b)} common images only`);
    c.renameInput.setAttribute("aria-label", `New name for ${this.label(b)}`);
    this.renderSparkline(c.spark, b.speeds);
  }

  makeCard(uid) {
    const c = {};
    c.name = h("h4", { class: "name" });
    c.state = h("span", { class: "state" });
    c.fill = h("span", { class: "fill" });
    c.bar = h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 }, c.fill);
    c.pct = h("span", { class: "pct" });
    c.job = h("dd", { class: "job" });
    c.speed = h("dd", { class: "speed" });
    c.result = h("dd", {});
    c.discs = h("dd", { class: "discs" });
    c.link = h("dd", { class: "link" });
    c.media = h("dd", { class: "media" });
    c.spark = h("div", { class: "spark", "aria-hidden": "true" });
    c.openBtn = h("button", {
      type: "button",
      class: "open-tray",
      onclick: async () => {
        const b = this.burners.get(uid);
        try {
          await this.session.command("open", { uid });
          toast(`Opening the tray of ${this.label(b)} — look for the open drive.`);
        } catch (err) {
          toast(err.message, "error");
        }
      },
    }, "Open tray");
    c.cancelBtn = h("button", {
      type: "button",
      class: "cancel-burn danger",
      onclick: async () => {
        const b = this.burners.get(uid);
        try {
          await this.session.command("cancel", { uid });
          toast(`Burn on ${this.label(b)} cancelled; the disc is not requeued.`);
        } catch (err) {
          toast(err.message, "error");
        }
      },
    }, "Cancel burn");
    c.commonBox = h("input", {
      type: "checkbox",
      class: "common-only",
      onchange: async (ev) => {
        const box = ev.target;
        const on = box.checked;
        const b = this.burners.get(uid);
        try {
          await this.session.command("common_only", { uid, on });
          toast(on ? `${this.label(b)} now gets common images only.` : `${this.label(b)} may burn any image again.`);
        } catch (err) {
          box.checked = !on;
          toast(err.message, "error");
        }
      },
    });
    const common = h("label", { class: "common-only-label" }, c.commonBox, " Common images only");
    c.renameInput = h("input", { name: "name", maxlength: 100, autocomplete: "off", placeholder: "e.g. Booth 1 left" });
    const rename = form({ class: "rename" }, [c.renameInput], "Rename", async (v, el) => {
      const name = v.name.trim();
      if (/[\t\r\n]/.test(name)) throw new Error("A name is one line of text.");
      await this.session.command("name", { uid, name });
      el.reset();
      toast(name ? `Renamed to “${name}”.` : "Name cleared.");
    });
    c.root = h(
      "article",
      { class: "burner", dataset: { uid } },
      h("header", {}, c.name, c.state),
      h("div", { class: "progress" }, c.bar, c.pct),
      h(
        "dl",
        { class: "facts" },
        h("div", { class: "wide" }, h("dt", {}, "Image"), c.job),
        h("div", { class: "wide" }, h("dt", {}, "Last result"), c.result),
        h("div", {}, h("dt", {}, "Speed"), c.speed),
        h("div", {}, h("dt", {}, "Discs"), c.discs),
        h("div", {}, h("dt", {}, "Link"), c.link),
        h("div", {}, h("dt", {}, "Media"), c.media),
      ),
      c.spark,
      h("div", { class: "cmd card-actions" }, c.openBtn, c.cancelBtn, common, rename),
      h("small", { class: "uid" }, uid),
    );
    return c;
  }

  refreshGroups() {
    this.other.root.hidden = this.other.body.childElementCount === 0;
    for (const [id, g] of this.groups) {
      const k = this.kiosks.get(id);
      g.none.hidden = g.body.childElementCount > 0 || !k;
    }
  }

  renderSparkline(box, speeds) {
    if (!speeds || speeds.length < 2) {
      box.replaceChildren();
      return;
    }
    const w = 120;
    const hgt = 24;
    const max = Math.max(...speeds) || 1;
    const pts = speeds.map((v, i) => `${((i / (speeds.length - 1)) * w).toFixed(1)},${(hgt - (v / max) * (hgt - 2) - 1).toFixed(1)}`);
    box.replaceChildren(svg("svg", { viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt }, svg("polyline", { points: pts.join(" "), fill: "none", class: "line" })));
  }
}
