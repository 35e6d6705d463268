// "Pending kiosks": new appliances waiting for a show admin to accept them (issue 8, command).
// A kiosk shows its enrollment code on its screen; the operator compares it with the code listed
// here before accepting. The list re-reads itself every few seconds while it is open, so a kiosk
// switched on meanwhile appears without a reload.

import { h, replace, toast, when } from "./ui.js";

const REFRESH_MS = 5000;

/** The view at #/kiosks: one panel per show the signed-in person administers. */
export async function pendingKiosksView(auth) {
  const shows =
    auth.role === "admin" ? await auth.all("/shows") : [{ id: auth.me.show_id, name: `show ${auth.me.show_id}` }];
  const panels = shows.map((s) => showPanel(auth, s));
  await Promise.all(panels.map((p) => p.refresh()));
  const timer = setInterval(() => panels.forEach((p) => p.refresh()), REFRESH_MS);
  const el = h(
    "section",
    { class: "panel", id: "pending-kiosks", "aria-labelledby": "pending-kiosks-h" },
    h("h1", { id: "pending-kiosks-h" }, "Pending kiosks"),
    h(
      "p",
      { class: "muted" },
      "A new kiosk shows an enrollment code and a three-word confirmation on its screen. Accept it only when both match the ones below; a conflict means another device asked with the same code: reject it and give the kiosk a new code.",
    ),
    panels.map((p) => p.el),
  );
  return { el, dispose: () => clearInterval(timer) };
}

function showPanel(auth, s) {
  const list = h("ul", { class: "list pending-list", "aria-live": "polite" });
  const el = h("div", { class: "card", dataset: { show: String(s.id) } }, h("h2", {}, s.name), list);
  let busy = false;

  async function refresh() {
    if (busy) return; // an answer is on its way; the next tick shows the result
    let items;
    try {
      items = await auth.all(`/shows/${s.id}/enrollments`);
    } catch (err) {
      replace(list, h("li", { class: "error", role: "alert" }, err.message));
      return;
    }
    if (!items.length) {
      replace(list, h("li", { class: "muted" }, "No kiosk is waiting."));
      return;
    }
    replace(list, ...items.map((e) => row(e)));
  }

  async function decide(e, verb, done) {
    busy = true;
    try {
      const out = await auth.post(`/shows/${s.id}/enrollments/${e.id}/${verb}`, {});
      toast(done(out));
    } catch (err) {
      toast(err.message, "error");
    } finally {
      busy = false;
      await refresh();
    }
  }

  function row(e) {
    const label = `${e.name} (${e.code})`;
    let armed = null;
    const reject = h("button", { type: "button", class: "danger", "aria-label": `Reject ${label}` }, "Reject");
    reject.addEventListener("click", () => {
      if (!armed) {
        reject.textContent = "Confirm: reject";
        armed = setTimeout(() => {
          armed = null;
          reject.textContent = "Reject";
        }, 4000);
        return;
      }
      clearTimeout(armed);
      reject.disabled = true;
      decide(e, "reject", () => `Rejected kiosk ${e.code}.`);
    });
    const accept = h(
      "button",
      {
        type: "button",
        class: "primary",
        "aria-label": `Accept ${label}`,
        onclick: () => {
          accept.disabled = true;
          decide(e, "accept", (out) => `Accepted kiosk ${e.code} as “${out.appliance.name}”.`);
        },
      },
      "Accept",
    );
    return h(
      "li",
      { dataset: { enrollment: String(e.id) } },
      h("strong", { class: "code" }, e.code),
      h("span", { class: "phrase", title: "confirmation shown on the kiosk" }, `confirm: ${e.phrase}`),
      h("span", {}, e.name),
      h("span", { class: "muted" }, `from ${e.source || "?"} · asked ${when(e.created_at)}`),
      e.attempts > 1 ? h("span", { class: "badge" }, `asked ${e.attempts}×`) : null,
      e.conflicts > 0
        ? h(
            "span",
            { class: "badge conflict", role: "alert" },
            `conflict: asked ${e.conflicts}× more by another device (last from ${e.conflict_source || "?"})`,
          )
        : null,
      h("span", { class: "pending-actions" }, accept, reject),
    );
  }

  return { el, refresh };
}
