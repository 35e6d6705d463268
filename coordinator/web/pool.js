// The session-master pool (admins): the masters new sessions are placed on, with their load.

import { auth, dangerButton, reload } from "./shell.js";
import { field, form, h, toast } from "./ui.js";

export async function poolView() {
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
