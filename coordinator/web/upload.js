// Adding an image to a shot by dropping its file on the dashboard: the browser hashes the file
// piece by piece (size, SHA-256, MD5; digest.js), creates the take without a URL, and uploads
// it to the coordinator's image store with a resumable Content-Range PUT, showing progress all
// the way. The same steps as `burnstand-coordinator image add` (docs/operator.md).

import { Md5, Sha256 } from "./digest.js";
import { bytes, h } from "./ui.js";

const PIECE = 4 * 1024 * 1024;
const API = "/api/v1";

async function hashFile(file, progress) {
  const sha = new Sha256();
  const md5 = new Md5();
  for (let at = 0; at < file.size; at += PIECE) {
    const piece = new Uint8Array(await file.slice(at, at + PIECE).arrayBuffer());
    sha.update(piece);
    md5.update(piece);
    progress(Math.min(file.size, at + PIECE));
  }
  return { size: file.size, sha256: sha.hex(), md5: md5.hex() };
}

/** PUT bytes offset.. of the file with upload progress (fetch has none; XMLHttpRequest does). */
function putRange(auth, takeId, file, offset, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `${API}/takes/${takeId}/image`);
    xhr.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Content-Range", `bytes ${offset}-${file.size - 1}/${file.size}`);
    xhr.upload.onprogress = (ev) => progress(offset + ev.loaded);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error((body && body.detail) || `upload refused (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("the connection to the coordinator broke during the upload"));
    xhr.send(file.slice(offset));
  });
}

/** A drop zone under a shot; `added(text)` runs when the take and its image are in. */
export function dropZone(auth, shot, added) {
  const input = h("input", { type: "file", class: "sr-only", "aria-label": `Image file for ${shot.name}` });
  const bar = h("progress", { max: 100, value: 0, hidden: true });
  const status = h("span", { class: "drop-status", role: "status" });
  const zone = h(
    "div",
    { class: "dropzone", dataset: { shot: String(shot.id) } },
    h("span", {}, "Drop an image file here to add it as a take, or "),
    h("label", { class: "linkish" }, "choose a file", input),
    h("div", { class: "drop-progress" }, bar, status),
  );
  let busy = false;
  const show = (what, done, total) => {
    const pct = total ? Math.floor((100 * done) / total) : 100;
    bar.hidden = false;
    bar.value = pct;
    status.textContent = `${what} ${pct}% · ${bytes(done)} of ${bytes(total)}`;
  };
  const add = async (file) => {
    if (busy || !file) return;
    busy = true;
    zone.dataset.state = "working";
    try {
      if (file.size === 0) throw new Error(`${file.name} is empty.`);
      const facts = await hashFile(file, (done) => show("Hashing", done, file.size));
      const take = await auth.post(`/shots/${shot.id}/takes`, { name: file.name, ...facts });
      const where = await auth.get(`/takes/${take.id}/image/upload`);
      let reply = where;
      if (!where.present) {
        reply = await putRange(auth, take.id, file, where.offset, (done) => show("Uploading", done, file.size));
      }
      show("Uploaded", file.size, file.size);
      zone.dataset.state = reply.present ? "done" : "partial";
      added(`Added take “${file.name}” (${bytes(file.size)}, SHA-256 ${facts.sha256.slice(0, 12)}…).`);
    } catch (err) {
      zone.dataset.state = "failed";
      status.textContent = err.message;
    } finally {
      busy = false;
    }
  };
  input.addEventListener("change", () => add(input.files[0]));
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const files = ev.dataTransfer ? ev.dataTransfer.files : null;
    add(files && files[0]);
  });
  return zone;
}
