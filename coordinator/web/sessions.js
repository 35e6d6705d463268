// Sessions: overseers list them and open any by id; contributors create, join, leave, suspend
// and resume the sessions of their show.

import { loadCatalog } from "./catalog.js";
import { auth, reload } from "./shell.js";
import { field, form, h, option, toast } from "./ui.js";

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

export async function sessionsView() {
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
