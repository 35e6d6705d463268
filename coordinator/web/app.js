// The burnstand dashboard: sign-in, the admin views over the rendezvous REST API (shows and their
// catalog, people, the session-master pool, sessions) and the live display and command view of
// one session over the client WebSocket. Views are chosen by the URL hash so reloads and the back
// button keep the place; what each role sees follows the rendezvous roles (docs/operator.md).
// Each view is a module of its own (catalog.js, people.js, pool.js, sessions.js, liveview.js,
// fleet.js, enroll.js); shell.js holds what they share.

import { ApiError } from "./api.js";
import { catalogView, showsView } from "./catalog.js";
import { pendingKiosksView } from "./enroll.js";
import { fleetView } from "./fleet.js";
import { LiveView } from "./liveview.js";
import { peopleView } from "./people.js";
import { poolView } from "./pool.js";
import { sessionsView } from "./sessions.js";
import { auth, currentKey, dangerButton, forgetView, setRouter, show } from "./shell.js";
import { duration, field, form, h, option, replace, toast } from "./ui.js";

const nav = document.getElementById("nav");
const who = document.getElementById("who");
let signedOutReason = null;

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
// Live: display and command

let live = null; // {sid, session, view}

function liveView(sid, tab) {
  sid = sid.toLowerCase();
  if (live && live.sid === sid && currentKey() === `live:${sid}`) {
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
    forgetView();
    route();
  } else if (currentKey() === null || currentKey() === "signin") {
    forgetView();
    route();
  } else {
    renderHeader();
  }
});
setRouter(route);
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
