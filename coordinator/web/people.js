// People of a show: admins manage show admins, show admins their contributors (each with a secret
// shown once), and both may remove a show's kiosks; admins also see and remove other admins.

import { auth, dangerButton, reload } from "./shell.js";
import { field, form, h, option, replace, toast, when } from "./ui.js";

function secretCallout(person, secret) {
  if (!secret) return null;
  return h(
    "div",
    { class: "callout", role: "status" },
    h("p", {}, `Secret for ${person.name} <${person.email}> — shown only this once; hand it over now:`),
    h("code", { class: "secret" }, secret),
  );
}

export async function peopleView(showParam) {
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
