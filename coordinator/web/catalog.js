// Shows and their catalog: the list of shows (admins add and remove them) and one show's catalog
// tree, episodes → sequences → shots → takes, each level edited by the role that owns it.

import { auth, dangerButton, reload } from "./shell.js";
import { dropZone } from "./upload.js";
import { bytes, field, form, h, toast } from "./ui.js";

export async function showsView() {
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

export async function catalogView(showId) {
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
