// The dashboard's shell as every view needs it: the signed-in credential (`auth`), the one view
// slot of the page (`show`, `reload`) and the button that asks twice before it destroys.

import { Auth } from "./api.js";
import { h, replace, toast } from "./ui.js";

export const auth = new Auth();
const main = document.getElementById("main");
let current = null; // the view being shown: {key, dispose?}
let router = async () => {};

/** Who renders the page for the current URL (app.js's `route`); `reload` calls it. */
export function setRouter(route) {
  router = route;
}

/** The key of the view being shown, or null. */
export function currentKey() {
  return current ? current.key : null;
}

/** Forget the view being shown, so the next `show` builds afresh. */
export function forgetView() {
  current = null;
}

/** Replace the main view (disposing the old one); `build` returns {el, dispose?} or an element. */
export async function show(key, build) {
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
export function reload() {
  const key = current ? current.key : null;
  current = null;
  router().then(() => {
    if (current) current.key = key;
  });
}

/** A button that asks once more before doing something that cannot be undone. */
export function dangerButton(label, action, name = "") {
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
