// Small DOM helpers for the dashboard. Text always goes in through textContent (never as HTML),
// so names from the catalog or from burners cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) {
    if (child instanceof Node) el.appendChild(child);
    else if (child !== null && child !== undefined) el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let fieldIds = 0;

/** A labelled form field; `input` attributes go to the control. */
export function field(label, attrs = {}, hint = null) {
  const id = attrs.id || `f${++fieldIds}`;
  const control =
    attrs.type === "select"
      ? h("select", { ...attrs, type: null, id, options: null }, ...(attrs.options || []))
      : h("input", { ...attrs, id });
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
  );
}

export function option(value, text, selected = false) {
  return h("option", { value, selected }, text);
}

/** A form whose submit runs `action` with the form's values, showing errors inside it. */
export function form(attrs, fields, submitLabel, action) {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const el = h("form", { ...attrs, novalidate: true }, ...fields, h("div", { class: "actions" }, button), error);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      await action(Object.fromEntries(new FormData(el).entries()), el);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

// A view may host its own notices (the live view keeps them in its burners column, so they never
// cover the queue or the statistics); otherwise they go to the page's corner.
const toastBox = () => document.querySelector(".toasts[data-toast-host]") || document.getElementById("toast");

/** Where a view's own notices appear: put it at the end of the column they may cover. Notices
 * still showing from the page before (such as "Joined …") move in with it, so they do not stay in
 * the corner over the new view. */
export function toastHost() {
  const box = h("div", { class: "toasts", "data-toast-host": true, role: "status", "aria-live": "polite" });
  const corner = document.getElementById("toast");
  if (corner) box.append(...corner.children);
  return h("div", { class: "toast-anchor" }, box);
}

export function toast(text, kind = "info") {
  const box = toastBox();
  const item = h("div", { class: `toast ${kind}` }, text);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/** Sizes in decimal units (1 MB = 1,000,000 bytes), as the kiosk, the CLIs, Raspberry Pi Imager,
 * balenaEtcher and the label on a disc or a stick say them (plumbing/units.py is the same rule). */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return i === 0 ? `${v.toFixed(0)} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** A medium as people and the agent name it: CDR, DVDR, BDR, BLOCK (not BURNCDR). */
export function mediaName(capability) {
  return String(capability).replace(/^BURN/, "");
}

export function speed(bps) {
  if (!bps) return "—";
  return `${(bps / 1e6).toFixed(1)} MB/s`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = typeof iso === "number" ? new Date(iso) : new Date(iso);
  return d.toLocaleString();
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
