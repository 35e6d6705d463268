// The burnstand dashboard: sign-in, the admin views over the rendezvous REST API (shows and their
// catalog, people, the session-master pool, sessions) and the live display and command view of
// one session over the client WebSocket. Views are chosen by the URL hash so reloads and the back
// button keep the place; what each role sees follows the rendezvous roles (docs/operator.md).

import { ApiError, Auth } from "./api.js";
import { LiveSession } from "./live.js";
import { pendingKiosksView } from "./enroll.js";
import { STATE_TEXT, fleetView, linkText } from "./fleet.js";
import { dropZone } from "./upload.js";
import { bytes, clock, duration, field, form, h, mediaName, option, replace, speed, svg, toast, toastHost, when } from "./ui.js";

const auth = new Auth();
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let signedOutReason = null;
let current = null; // the view being shown: {key, dispose?}

const ROLE_NAMES = {
  admin: "admin",
  show_admin: "show admin",
  contributor: "contributor",
};

// ---------------------------------------------------------------------------------------------
// Shell: header, navigation, routing

function navLinks() {
  const role = auth.role;
  const links = [];
  if (role === "admin" || role === "show_admin") links.push(["#/fleet", "Fleet"]);
  links.push(["#/shows", role === "admin" ? "Shows" : "Catalog"]);
  if (role === "admin" || role === "show_admin") links.push(["#/people", "People"]);
  if (role === "admin" || role === "show_admin") links.push(["#/kiosks", "Pending kiosks"]);
  if (role === "admin") links.push(["#/pool", "Masters"]);
  links.push(["#/sessions", "Sessions"]);
  return links;
}

function renderHeader() {
  if (!auth.signedIn) {
    replace(nav);
    replace(who);
    return;
  }
  const here = location.hash.split("/").slice(0, 2).join("/");
  replace(
    nav,
    ...navLinks().map(([href, text]) =>
      h("a", { href, "aria-current": here === href || (here === "#/live" && href === "#/sessions") ? "page" : null }, text),
    ),
  );
  const me = auth.me;
  const expiry =
    auth.expiresAt === null
      ? "does not expire"
      : `valid ${duration((auth.expiresAt - Date.now()) / 1000)} more, refreshed automatically`;
  replace(
    who,
    h("span", { class: "person" }, me.name || "signed in"),
    h("span", { class: "role" }, ROLE_NAMES[me.role] || me.role),
    me.show_id ? h("span", { class: "show" }, `show ${me.show_id}`) : null,
    h("span", { class: "expiry", title: me.expires_at || "" }, expiry),
    wallButton(),
    signOutButton(me.role),
  );
}

function signOutButton(role) {
  const out = () => auth.revokeAndSignOut().catch((err) => toast(err.message, "error"));
  // Signing out revokes the credential on the coordinator. A show admin or contributor enters
  // again with their secret; an admin credential is gone for good, so that one asks first.
  if (role === "admin") {
    const button = dangerButton("Sign out", out);
    button.title = "Revokes this admin credential: you need a new one to come back";
    return button;
  }
  return h("button", { type: "button", class: "quiet", onclick: out }, "Sign out");
}

function wallButton() {
  const on = document.body.classList.contains("wall");
  return h(
    "button",
    {
      type: "button",
      class: "quiet",
      id: "wall-toggle",
      "aria-pressed": on ? "true" : "false",
      onclick: () => {
        const next = !document.body.classList.contains("wall");
        document.body.classList.toggle("wall", next);
        localStorage.setItem("burnstand.wall", next ? "1" : "0");
        renderHeader();
      },
    },
    "Wall mode",
  );
}

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return parts;
}

async function route() {
  renderHeader();
  if (!auth.signedIn) {
    show("signin", () => signInView());
    return;
  }
  const [page, id, tab] = parseRoute();
  switch (page) {
    case "fleet":
      show("fleet", () => fleetView(auth));
      return;
    case "shows":
      if (id) show(`catalog:${id}`, () => catalogView(Number(id)));
      else show("shows", () => showsView());
      return;
    case "people":
      show(`people:${id || ""}`, () => peopleView(id ? Number(id) : null));
      return;
    case "kiosks":
      show("kiosks", () => pendingKiosksView(auth));
      return;
    case "pool":
      show("pool", () => poolView());
      return;
    case "sessions":
      show("sessions", () => sessionsView());
      return;
    case "live":
      if (id) {
        liveView(id, tab === "command" ? "command" : "display");
        return;
      }
      break;
    default:
      break;
  }
  // Overseers land on the fleet (what every kiosk is doing), contributors on their sessions.
  location.replace(auth.role === "contributor" ? "#/sessions" : "#/fleet");
}

/** Replace the main view (disposing the old one); `build` returns {el, dispose?} or an element. */
async function show(key, build) {
  if (current && current.dispose) current.dispose();
  current = { key };
  const mine = current;
  replace(main, h("p", { class: "loading", role: "status" }, "Loading…"));
  try {
    const built = await build();
    if (current !== mine) {
      if (built && built.dispose) built.dispose();
      return;
    }
    const el = built instanceof Node ? built : built.el;
    current.dispose = built instanceof Node ? null : built.dispose;
    replace(main, el);
  } catch (err) {
    if (current !== mine) return;
    replace(main, h("section", { class: "panel" }, h("h1", {}, "Could not load this page"), h("p", { class: "error", role: "alert" }, err.message)));
  }
}

/** Re-render the current view in place (after a change), keeping the page where it is. */
function reload() {
  const key = current ? current.key : null;
  current = null;
  route().then(() => {
    if (current) current.key = key;
  });
}

// ---------------------------------------------------------------------------------------------
// Sign in

function signInView() {
  const reason = signedOutReason;
  signedOutReason = null;
  const paste = form(
    { class: "card", "aria-labelledby": "paste-h", id: "paste-form" },
    [
      h("h2", { id: "paste-h" }, "Paste a credential"),
      h("p", { class: "hint" }, "An admin credential from “burnstand-coordinator admin create”, or one you were given."),
      field("Credential", { name: "credential", autocomplete: "off", spellcheck: "false", required: true }),
    ],
    "Sign in",
    async (v) => {
      await auth.useCredential(v.credential);
    },
  );
  const join = form(
    { class: "card", "aria-labelledby": "join-h", id: "join-form" },
    [
      h("h2", { id: "join-h" }, "Enter the system"),
      h("p", { class: "hint" }, "Show admins and contributors: your email, the secret you were given, and the show’s number."),
      field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
      field("Secret", { name: "secret", type: "password", autocomplete: "current-password", required: true }),
      field("Show", { name: "show", type: "number", min: 1, value: 1, required: true }),
      field("Stay signed in for", {
        name: "duration",
        type: "select",
        options: [option(3600, "1 hour"), option(4 * 3600, "4 hours"), option(12 * 3600, "12 hours", true)],
      }),
    ],
    "Enter system",
    async (v) => {
      await auth.enterSystem(v.email, v.secret, v.show, v.duration);
    },
  );
  return h(
    "section",
    { class: "signin" },
    h("h1", {}, "Sign in"),
    reason ? h("p", { class: "error", role: "alert" }, reason) : null,
    h("div", { class: "grid two" }, paste, join),
  );
}

// ---------------------------------------------------------------------------------------------
// Shows and their catalog

/** A button that asks once more before doing something that cannot be undone. */
function dangerButton(label, action, name = "") {
  const button = h("button", { type: "button", class: "danger", "aria-label": name ? `${label} ${name}` : null }, label);
  let armed = null;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = `Confirm: ${label.toLowerCase()}`;
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      toast(err.message, "error");
      button.disabled = false;
      button.textContent = label;
    }
  });
  return button;
}

async function showsView() {
  const shows = await auth.all("/shows");
  const isAdmin = auth.role === "admin";
  if (!isAdmin && shows.length === 1) {
    return catalogView(shows[0].id);
  }
  const list = h(
    "ul",
    { class: "list", id: "shows" },
    shows.map((s) =>
      h(
        "li",
        {},
        h("a", { href: `#/shows/${s.id}` }, s.name),
        h("span", { class: "muted" }, ` #${s.id} · ${s.asset_root}`),
        isAdmin
          ? dangerButton("Remove", async () => {
              await auth.del(`/shows/${s.id}`);
              toast(`Removed show “${s.name}”.`);
              reload();
            }, s.name)
          : null,
      ),
    ),
  );
  const add = isAdmin
    ? form(
        { class: "card inline", id: "add-show" },
        [
          h("h2", {}, "Add a show"),
          field("Name", { name: "name", required: true }),
          field("Asset root", { name: "asset_root", placeholder: "https://images.example.org/", required: true }),
        ],
        "Add show",
        async (v) => {
          const s = await auth.post("/shows", { name: v.name, asset_root: v.asset_root });
          toast(`Added show “${s.name}”.`);
          reload();
        },
      )
    : null;
  return h(
    "section",
    { class: "panel" },
    h("h1", {}, "Shows"),
    shows.length ? list : h("p", { class: "muted" }, "No shows yet."),
    add,
  );
}

/** The catalog tree of one show: episodes → sequences → shots → takes. */
export async function loadCatalog(showId) {
  const episodes = await auth.all(`/shows/${showId}/episodes`);
  await Promise.all(
    episodes.map(async (e) => {
      e.sequences = await auth.all(`/episodes/${e.id}/sequences`);
      await Promise.all(
        e.sequences.map(async (q) => {
          q.shots = await auth.all(`/sequences/${q.id}/shots`);
          await Promise.all(
            q.shots.map(async (s) => {
              s.takes = await auth.all(`/shots/${s.id}/takes`);
            }),
          );
        }),
      );
    }),
  );
  return episodes;
}

/** A catalog level in a volunteer's words, with the API's name beside it for scripts
 * (docs/operator.md: show = campaign, episode = release, sequence = edition, shot = medium to
 * produce, take = image build). */
function catalogKind(meaning, api) {
  return h("span", { class: "kind", title: `called “${api}” in the API` }, meaning, h("small", { class: "api-name" }, ` ${api}`));
}

function miniForm(id, label, submit, fields, action) {
  return h(
    "details",
    { class: "add", id },
    h("summary", {}, label),
    form({ class: "inline" }, fields, submit, action),
  );
}

async function catalogView(showId) {
  const [show, episodes] = await Promise.all([auth.get(`/shows/${showId}`), loadCatalog(showId)]);
  const role = auth.role;
  const showAdmin = role === "show_admin";
  const contributor = role === "contributor";
  const after = (text) => {
    toast(text);
    reload();
  };
  // What must fit on the medium is the unpacked image; a compressed take says both sizes.
  const mediaNames = { disk: "disk image: USB/SD", iso: "ISO: discs", hybrid: "hybrid ISO: discs and USB/SD" };
  const takeSize = (t) =>
    (t.extracted_size ? `${bytes(t.extracted_size)} unpacked (${bytes(t.size)} compressed)` : bytes(t.size)) +
    (mediaNames[t.media] ? ` · ${mediaNames[t.media]}` : "");
  const takeItem = (t) =>
    h(
      "li",
      { class: "node take" },
      catalogKind("Image build", "take"),
      h("strong", {}, t.name),
      h("span", { class: "muted" }, ` ${takeSize(t)} · md5 ${t.md5}`),
      contributor ? dangerButton("Remove", async () => { await auth.del(`/takes/${t.id}`); after(`Removed take “${t.name}”.`); }, t.name) : null,
    );
  const shotItem = (s) =>
    h(
      "li",
      { class: "node shot" },
      catalogKind("Medium", "shot"),
      h("strong", {}, s.name),
      s.direction_notes ? h("span", { class: "muted" }, ` — ${s.direction_notes}`) : null,
      contributor ? dangerButton("Remove", async () => { await auth.del(`/shots/${s.id}`); after(`Removed shot “${s.name}”.`); }, s.name) : null,
      h("ul", {}, s.takes.map(takeItem)),
      contributor ? dropZone(auth, s, after) : null,
      contributor
        ? miniForm(`add-take-${s.id}`, "Add a take by its URL", "Add take", [
            field("File name", { name: "name", required: true }),
            field("Size (bytes)", { name: "size", type: "number", min: 1, required: true }),
            field("SHA-256", { name: "sha256", required: true, pattern: "[0-9a-fA-F]{64}" }),
            field("MD5", { name: "md5", required: true, pattern: "[0-9a-fA-F]{32}" }),
            field("URL", { name: "url", type: "url", required: true }),
            field("Unpacked size (bytes, compressed images)", { name: "extracted_size", type: "number", min: 1 }),
            field("Unpacked SHA-256 (compressed images)", { name: "extracted_sha256", pattern: "[0-9a-fA-F]{64}" }),
          ], async (v) => {
            const take = { name: v.name, size: Number(v.size), sha256: v.sha256, md5: v.md5, url: v.url };
            if (v.extracted_size) take.extracted_size = Number(v.extracted_size);
            if (v.extracted_sha256) take.extracted_sha256 = v.extracted_sha256;
            await auth.post(`/shots/${s.id}/takes`, take);
            after(`Added take “${v.name}”.`);
          })
        : null,
    );
  const sequenceItem = (q) =>
    h(
      "li",
      { class: "node sequence" },
      catalogKind("Edition", "sequence"),
      h("strong", {}, q.name),
      showAdmin ? dangerButton("Remove", async () => { await auth.del(`/sequences/${q.id}`); after(`Removed sequence “${q.name}”.`); }, q.name) : null,
      h("ul", {}, q.shots.map(shotItem)),
      contributor
        ? miniForm(`add-shot-${q.id}`, "Add a shot", "Add shot", [
            field("Name", { name: "name", required: true }),
            field("Direction notes", { name: "direction_notes", placeholder: "medium, label, minimum size" }),
          ], async (v) => {
            await auth.post(`/sequences/${q.id}/shots`, { name: v.name, direction_notes: v.direction_notes });
            after(`Added shot “${v.name}”.`);
          })
        : null,
    );
  const episodeItem = (e) =>
    h(
      "li",
      { class: "node episode" },
      catalogKind("Release", "episode"),
      h("strong", {}, e.name),
      showAdmin ? dangerButton("Remove", async () => { await auth.del(`/episodes/${e.id}`); after(`Removed episode “${e.name}”.`); }, e.name) : null,
      h("ul", {}, e.sequences.map(sequenceItem)),
      showAdmin
        ? miniForm(`add-sequence-${e.id}`, "Add a sequence", "Add sequence", [field("Name", { name: "name", required: true })], async (v) => {
            await auth.post(`/episodes/${e.id}/sequences`, { name: v.name });
            after(`Added sequence “${v.name}”.`);
          })
        : null,
    );
  const addEpisode = showAdmin
    ? form({ class: "card inline", id: "add-episode" }, [h("h2", {}, "Add an episode"), field("Name", { name: "name", required: true, placeholder: "a release, e.g. 26.04" })], "Add episode", async (v) => {
        await auth.post(`/shows/${showId}/episodes`, { name: v.name });
        after(`Added episode “${v.name}”.`);
      })
    : null;
  const hint = {
    admin: "Admins see every show’s catalog; show admins add episodes and sequences, contributors shots and takes.",
    show_admin: "You add and remove episodes and sequences; contributors add shots and takes.",
    contributor: "You add and remove shots and takes; show admins add episodes and sequences.",
  }[role];
  return h(
    "section",
    { class: "panel catalog" },
    h("p", { class: "crumbs" }, role === "admin" ? h("a", { href: "#/shows" }, "Shows") : null),
    h("h1", {}, show.name),
    h("p", { class: "muted" }, `Show #${show.id} · images under ${show.asset_root}`),
    hint ? h("p", { class: "hint" }, hint) : null,
    h("ul", { class: "tree", id: "catalog" }, episodes.map(episodeItem)),
    episodes.length ? null : h("p", { class: "muted" }, "No episodes yet."),
    addEpisode,
  );
}

// ---------------------------------------------------------------------------------------------
// People

function secretCallout(person, secret) {
  if (!secret) return null;
  return h(
    "div",
    { class: "callout", role: "status" },
    h("p", {}, `Secret for ${person.name} <${person.email}> — shown only this once; hand it over now:`),
    h("code", { class: "secret" }, secret),
  );
}

async function peopleView(showParam) {
  const role = auth.role;
  const admin = role === "admin";
  const shows = await auth.all("/shows");
  const showId = admin ? showParam || (shows[0] && shows[0].id) : auth.me.show_id;
  if (!showId) return h("section", { class: "panel" }, h("h1", {}, "People"), h("p", { class: "muted" }, "Add a show first."));
  const kind = admin ? "admins" : "contributors";
  const people = await auth.all(`/shows/${showId}/${kind}`);
  const out = h("div", { id: "secret-out" });
  const title = admin ? "Show admins" : "Contributors";
  const rows = people.map((p) =>
    h(
      "tr",
      {},
      h("td", {}, p.name),
      h("td", {}, p.email),
      h("td", {}, when(p.created_at)),
      h(
        "td",
        { class: "row-actions" },
        h("button", {
          type: "button",
          onclick: async () => {
            try {
              const r = await auth.patch(`/shows/${showId}/${kind}/${p.id}`, { reset_secret: true });
              replace(out, secretCallout(r, r.secret));
            } catch (err) {
              toast(err.message, "error");
            }
          },
        }, "New secret"),
        dangerButton("Remove", async () => {
          await auth.del(`/shows/${showId}/${kind}/${p.id}`);
          toast(`Removed ${p.name}.`);
          reload();
        }, p.name),
      ),
    ),
  );
  const picker = admin
    ? h(
        "div",
        { class: "field" },
        h("label", { for: "people-show" }, "Show"),
        h(
          "select",
          { id: "people-show", onchange: (ev) => (location.hash = `#/people/${ev.target.value}`) },
          shows.map((s) => option(s.id, `${s.name} (#${s.id})`, s.id === showId)),
        ),
      )
    : null;
  const add = form(
    { class: "card inline", id: "add-person" },
    [h("h2", {}, admin ? "Add a show admin" : "Add a contributor"), field("Name", { name: "name", required: true }), field("Email", { name: "email", type: "email", required: true })],
    admin ? "Add show admin" : "Add contributor",
    async (v, el) => {
      const p = await auth.post(`/shows/${showId}/${kind}`, { name: v.name, email: v.email });
      el.reset();
      toast(`Added ${p.name}.`);
      const tbody = document.getElementById("people-rows");
      if (tbody) tbody.appendChild(h("tr", {}, h("td", {}, p.name), h("td", {}, p.email), h("td", {}, when(p.created_at)), h("td", {})));
      replace(out, secretCallout(p, p.secret));
    },
  );
  const kiosks = await auth.all(`/shows/${showId}/appliances`);
  const admins = admin ? await auth.all("/admins") : [];
  return h(
    "section",
    { class: "panel" },
    h("h1", {}, "People"),
    h("p", { class: "hint" }, admin ? "Admins add show admins; show admins add contributors to their show." : "You add contributors to your show; they sign in with their email and secret."),
    picker,
    h("h2", {}, title),
    h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Email"), h("th", { scope: "col" }, "Added"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))), h("tbody", { id: "people-rows" }, rows)),
    people.length ? null : h("p", { class: "muted" }, "Nobody yet."),
    out,
    add,
    revocableTable("Kiosks", "kiosk-rows", kiosks, (k) => [k.name, when(k.created_at)], ["Name", "Enrolled"], (k) => `/shows/${showId}/appliances/${k.id}`,
      "Removing a kiosk revokes its credential at once and closes its link; enroll it again to bring it back."),
    admin
      ? revocableTable("Admins", "admin-rows", admins, (a) => [a.name, a.email], ["Name", "Email"], (a) => `/admins/${a.id}`,
          "Removing an admin revokes their credential at once. The last admin cannot be removed.")
      : null,
  );
}

function revocableTable(title, id, items, cells, headings, path, hint) {
  const rows = items.map((item) =>
    h(
      "tr",
      {},
      ...cells(item).map((text) => h("td", {}, text)),
      h("td", { class: "row-actions" }, dangerButton("Remove", async () => {
        await auth.del(path(item));
        toast(`Removed ${item.name}.`);
        reload();
      }, item.name)),
    ),
  );
  return h(
    "div",
    {},
    h("h2", {}, title),
    h("p", { class: "hint" }, hint),
    h(
      "table",
      { class: "data" },
      h("thead", {}, h("tr", {}, ...headings.map((t) => h("th", { scope: "col" }, t)), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", { id }, rows),
    ),
    items.length ? null : h("p", { class: "muted" }, "None."),
  );
}

// ---------------------------------------------------------------------------------------------
// Session-master pool (admin)

async function poolView() {
  const masters = await auth.all("/pool");
  const rows = masters.map((m) =>
    h(
      "tr",
      {},
      h("td", {}, m.name, m.embedded ? h("span", { class: "tag" }, "embedded") : null),
      h("td", {}, h("code", {}, m.url)),
      h("td", { class: "num" }, `${m.live_sessions} / ${m.capacity}`),
      h("td", { class: "row-actions" }, dangerButton("Remove", async () => {
        await auth.del(`/pool/${m.id}`);
        toast(`Removed master ${m.name}.`);
        reload();
      }, m.name)),
    ),
  );
  const add = form(
    { class: "card inline", id: "add-master" },
    [h("h2", {}, "Add a session master"), field("Name", { name: "name", required: true }), field("URL", { name: "url", placeholder: "http://10.0.0.5:8081", required: true }), field("Capacity", { name: "capacity", type: "number", min: 1, value: 100 })],
    "Add master",
    async (v) => {
      const body = { name: v.name, url: v.url };
      if (v.capacity) body.capacity = Number(v.capacity);
      await auth.post("/pool", body);
      toast(`Added master ${v.name}.`);
      reload();
    },
  );
  return h(
    "section",
    { class: "panel" },
    h("h1", {}, "Session masters"),
    h("p", { class: "hint" }, "New sessions go to the master with the fewest live sessions below its capacity. A master that hosts live sessions cannot be removed."),
    h("table", { class: "data", id: "pool" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "URL"), h("th", { scope: "col" }, "Live sessions"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))), h("tbody", {}, rows)),
    add,
  );
}

// ---------------------------------------------------------------------------------------------
// Sessions

function openByIdForm() {
  return form(
    { class: "card inline", id: "open-session" },
    [h("h2", {}, "Open a session"), field("Session id", { name: "sid", required: true, pattern: "[0-9a-fA-F]{16}", placeholder: "16 hex characters" })],
    "Open live view",
    async (v) => {
      const sid = v.sid.trim().toLowerCase();
      if (!/^[0-9a-f]{16}$/.test(sid)) throw new Error("A session id is 16 hex characters, e.g. 3f9c2a7d1b0e4c85.");
      location.hash = `#/live/${sid}/display`;
    },
  );
}

async function sessionsView() {
  if (auth.role !== "contributor") {
    const sessions = await auth.all("/sessions");
    return h(
      "section",
      { class: "panel" },
      h("h1", {}, "Sessions"),
      h("p", { class: "hint" }, "Contributors create, join and suspend sessions. As an overseer you may watch and command any session of the shows you manage; the Fleet page shows them all at work."),
      h(
        "ul",
        { class: "list", id: "sessions" },
        sessions.map((s) =>
          h(
            "li",
            { dataset: { session: s.id } },
            s.state === "live" ? h("a", { href: `#/live/${s.id}/display` }, s.name) : s.name,
            h("span", { class: "muted" }, ` ${s.state} · ${s.members} member${s.members === 1 ? "" : "s"} · `),
            h("code", { class: "muted" }, s.id),
          ),
        ),
      ),
      sessions.length ? null : h("p", { class: "muted" }, "No sessions yet."),
      openByIdForm(),
    );
  }
  const [sessions, episodes] = await Promise.all([auth.all("/sessions"), loadCatalog(auth.me.show_id)]);
  const act = (label, path, done, extra = {}) =>
    h("button", {
      type: "button",
      ...extra,
      onclick: async () => {
        try {
          await auth.post(path);
          toast(done);
          reload();
        } catch (err) {
          toast(err.message, "error");
        }
      },
    }, label);
  const rows = sessions.map((s) =>
    h(
      "tr",
      { dataset: { session: s.id } },
      h("td", {}, s.state === "live" && s.member ? h("a", { href: `#/live/${s.id}/display` }, s.name) : s.name, h("div", {}, h("code", { class: "muted" }, s.id))),
      h("td", {}, h("span", { class: `badge ${s.state}` }, s.state)),
      h("td", { class: "num" }, String(s.members)),
      h("td", {}, s.master ? s.master.name : "—"),
      h(
        "td",
        { class: "row-actions" },
        s.state === "live" && !s.member ? act("Join", `/sessions/${s.id}/join`, `Joined “${s.name}”.`) : null,
        s.state === "live" && s.member ? h("a", { class: "button", href: `#/live/${s.id}/display` }, "Open") : null,
        s.state === "live" && s.member ? act("Leave", `/sessions/${s.id}/leave`, `Left “${s.name}”.`) : null,
        s.state === "live" ? act("Suspend", `/sessions/${s.id}/suspend`, `Suspended “${s.name}”.`) : null,
        s.state === "suspended" ? act("Resume", `/sessions/${s.id}/resume`, `Resumed “${s.name}”.`) : null,
      ),
    ),
  );
  // One choice sets the whole scope: an episode, or a take (with its sequence and shot).
  const scopes = [];
  for (const e of episodes) {
    scopes.push(option(`e:${e.id}`, `Episode ${e.name}`));
    for (const q of e.sequences) for (const s of q.shots) for (const t of s.takes) {
      scopes.push(option(`t:${e.id}:${q.id}:${s.id}:${t.id}`, `   ${e.name} › ${q.name} › ${t.name}`));
    }
  }
  const create = form(
    { class: "card inline", id: "create-session" },
    [
      h("h2", {}, "Create a session"),
      field("Name", { name: "name", required: true, placeholder: "LinuxFest booth, Saturday" }),
      field("Scope", { name: "scope", type: "select", options: scopes }),
    ],
    "Create session",
    async (v, el) => {
      if (!v.scope) throw new Error("The show has no episode yet; a show admin adds one first.");
      const [kind, ...ids] = v.scope.split(":").map((x, i) => (i === 0 ? x : Number(x)));
      const body = { name: v.name, episode_id: ids[0] };
      if (kind === "t") Object.assign(body, { sequence_id: ids[1], shot_id: ids[2], take_id: ids[3] });
      const s = await auth.post("/sessions", body);
      el.reset();
      toast(`Created “${s.name}” on ${s.master ? s.master.name : "a master"}.`);
      reload();
    },
  );
  return h(
    "section",
    { class: "panel" },
    h("h1", {}, "Sessions"),
    h("table", { class: "data", id: "sessions" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Session"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Members"), h("th", { scope: "col" }, "Master"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))), h("tbody", {}, rows)),
    sessions.length ? null : h("p", { class: "muted" }, "No sessions yet."),
    create,
  );
}

// ---------------------------------------------------------------------------------------------
// Live: display and command

let live = null; // {sid, session, view}

function liveView(sid, tab) {
  sid = sid.toLowerCase();
  if (live && live.sid === sid && current && current.key === `live:${sid}`) {
    live.view.setTab(tab);
    renderHeader();
    return;
  }
  show(`live:${sid}`, async () => {
    const view = new LiveView(sid, tab);
    await view.init();
    live = { sid, view };
    return {
      el: view.el,
      dispose: () => {
        view.dispose();
        if (live && live.view === view) live = null;
      },
    };
  });
}

const PAGE_TITLE = "burnstand dashboard";
const CHART_MINUTES = 20;
// Minutes of history the view keeps: "discs per hour" counts the last hour's discs.
const HOUR_MINUTES = 60;
const CACHE_SHOWN = 12;

class LiveView {
  constructor(sid, tab) {
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
    tasks.push(auth.get(`/sessions/${encodeURIComponent(this.sid)}`).then((s) => (this.name = s.name), () => null));
    await Promise.all(tasks);
    this.build();
    for (const kind of ["snapshot", "burner", "kiosk", "queue", "stats", "room"]) {
      this.session.addEventListener(kind, (ev) => this[`on_${kind}`](ev.detail));
    }
    this.session.addEventListener("state", (ev) => this.onConnection(ev.detail));
    this.session.addEventListener("expiring", () => auth.refresh().catch(() => {}));
    this.session.start();
  }

  dispose() {
    document.title = PAGE_TITLE;
    this.session.stop();
    clearInterval(this.ticker);
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

  // ---- rendering -----------------------------------------------------------------------

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
    g.none = h("p", { class: "muted no-drives" }, "No burners on this kiosk right now.");
    g.body = h("div", { class: "wall-grid kiosk-burners" });
    g.root = h(
      "section",
      { class: "kiosk", dataset: { kiosk: id }, "aria-labelledby": headId },
      h("header", { class: "kiosk-head" }, g.title, g.version, g.link),
      g.cacheBox,
      g.none,
      g.body,
    );
    if (id === "other") {
      g.version.hidden = g.link.hidden = g.cacheBox.hidden = g.none.hidden = true;
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

// ---------------------------------------------------------------------------------------------
// Start

auth.addEventListener("signedout", (ev) => {
  signedOutReason = ev.detail;
  if (live) {
    live.view.dispose();
    live = null;
  }
});
auth.addEventListener("change", () => {
  if (!auth.signedIn) {
    current = null;
    route();
  } else if (!current || current.key === "signin") {
    current = null;
    route();
  } else {
    renderHeader();
  }
});
window.addEventListener("hashchange", () => route());
setInterval(() => auth.signedIn && renderHeader(), 30_000);

if (localStorage.getItem("burnstand.wall") === "1" || new URLSearchParams(location.search).has("wall")) {
  document.body.classList.add("wall");
}

(async () => {
  try {
    await auth.restore();
  } catch (err) {
    signedOutReason = err instanceof ApiError ? err.message : String(err);
  }
  route();
})();
