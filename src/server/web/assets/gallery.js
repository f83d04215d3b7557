// gphotos-dav's gallery: the viewer, uploads and picking, on top of a page that works
// without it (every tile is a link to the file). Plain JavaScript, no build step, no other
// origin: the page's Content-Security-Policy allows scripts from this server only.
"use strict";

(function () {
  const body = document.body;
  const prefix = body.dataset.prefix || "";
  const folder = body.dataset.folder || "/";
  // Absolute URLs: fetch refuses a relative one on a page whose address holds credentials
  // (`http://user:pw@host/`), and location.origin never holds them.
  const origin = location.origin;
  const api = origin + prefix + "/_/api/picks";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // ---- Viewer: a photo at screen size (a size variant), a video from the file's own path
  // (the browser seeks with Range requests), left and right keys, a download link.
  const tiles = Array.from(document.querySelectorAll("a.tile"));
  let current = -1;
  const viewer = el("div", { id: "viewer", hidden: "", role: "dialog", "aria-modal": "true" });
  const stage = el("div", { class: "stage" });
  const title = el("span", { class: "title" });
  const download = el("a", { id: "viewer-download", text: "Download" });
  const prev = el("button", { type: "button", id: "viewer-prev", text: "←" });
  const next = el("button", { type: "button", id: "viewer-next", text: "→" });
  const close = el("button", { type: "button", id: "viewer-close", text: "Close" });
  viewer.append(stage, el("div", { class: "bar" }, prev, title, download, next, close));
  body.append(viewer);

  function show(i) {
    if (i < 0 || i >= tiles.length) return;
    current = i;
    const t = tiles[i];
    stage.replaceChildren();
    if (t.dataset.kind === "video") {
      stage.append(el("video", { id: "viewer-video", src: t.getAttribute("href"), controls: "", autoplay: "", preload: "metadata" }));
    } else {
      const ratio = window.devicePixelRatio || 1;
      const w = Math.round(window.innerWidth * ratio), h = Math.round(window.innerHeight * ratio);
      stage.append(el("img", { id: "viewer-img", alt: t.dataset.name, src: t.dataset.variant + "?w=" + w + "&h=" + h }));
    }
    title.textContent = t.dataset.name + " (" + (i + 1) + " of " + tiles.length + ")";
    download.setAttribute("href", t.getAttribute("href"));
    download.setAttribute("download", t.dataset.name);
    viewer.hidden = false;
  }
  function hide() {
    viewer.hidden = true;
    stage.replaceChildren();
    current = -1;
  }
  tiles.forEach((t, i) => t.addEventListener("click", (ev) => {
    if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    show(i);
  }));
  prev.addEventListener("click", () => show(current - 1));
  next.addEventListener("click", () => show(current + 1));
  close.addEventListener("click", hide);
  document.addEventListener("keydown", (ev) => {
    if (viewer.hidden) return;
    if (ev.key === "ArrowLeft") show(current - 1);
    else if (ev.key === "ArrowRight") show(current + 1);
    else if (ev.key === "Escape") hide();
  });

  // ---- Uploads: each file one PUT to its path in this folder (the WebDAV upload path: the
  // same limits, the same idempotence, the same errors, shown here).
  const input = document.getElementById("upload");
  const list = document.getElementById("uploads");
  const drop = document.getElementById("drop");
  function put(file) {
    return new Promise((resolve) => {
      const bar = el("progress", { max: "1", value: "0" });
      const status = el("span", { text: "uploading…" });
      list.append(el("li", {}, el("span", { text: file.name }), bar, status));
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", origin + folder + encodeURIComponent(file.name));
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
      xhr.onload = () => {
        const ok = xhr.status >= 200 && xhr.status < 300;
        bar.value = 1;
        status.textContent = ok ? (xhr.status === 204 ? "already there" : "uploaded") : xhr.status + ": " + xhr.responseText.trim();
        status.className = ok ? "done" : "error";
        resolve(ok);
      };
      xhr.onerror = () => { status.textContent = "the connection failed"; status.className = "error"; resolve(false); };
      xhr.send(file);
    });
  }
  async function upload(files) {
    let ok = true;
    for (const f of files) ok = (await put(f)) && ok;
    if (ok) location.reload();
  }
  if (input && list) {
    input.addEventListener("change", () => upload(Array.from(input.files)));
    document.addEventListener("dragover", (e) => { e.preventDefault(); drop.hidden = false; });
    document.addEventListener("dragleave", (e) => { if (e.target === drop) drop.hidden = true; });
    document.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.hidden = true;
      upload(Array.from(e.dataTransfer.files));
    });
  }

  // ---- New album: MKCOL /album/<title>.
  const newAlbum = document.getElementById("new-album");
  if (newAlbum) newAlbum.addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = newAlbum.elements.title.value.trim();
    const path = folder + encodeURIComponent(name) + "/";
    const r = await fetch(origin + path, { method: "MKCOL" });
    if (r.ok) location.href = path;
    else alert("Could not create the album: " + (await r.text()));
  });

  // ---- Picking: a session, its link and QR code, followed until the user is done; the
  // sets, their state, deletion and import into an album.
  const picks = document.getElementById("picks");
  if (!picks) return;
  const canImport = picks.dataset.import === "1";
  const sets = document.getElementById("pick-sets");
  const session = document.getElementById("pick-session");
  const form = document.getElementById("pick-form");
  const enc = encodeURIComponent;

  async function json(r) {
    try { return await r.json(); } catch (_) { return {}; }
  }
  async function refresh() {
    let r;
    try {
      r = await fetch(api);
    } catch (_) {
      return null; // the page is going away (a reload), or the server is: the next tick tries again
    }
    if (!r.ok) return null;
    const all = await r.json();
    sets.replaceChildren();
    for (const s of all) {
      const li = el("li", { "data-set": s.name, "data-state": s.state });
      li.append(s.state === "ready" ? el("a", { href: s.path, text: s.name }) : el("strong", { text: s.name }));
      li.append(el("span", { class: "state", text: s.state + (s.items !== undefined ? " · " + s.items + " items" : "") + (s.expireTime ? " · until " + new Date(s.expireTime).toLocaleString() : "") }));
      if (s.message) li.append(el("span", { class: "error", text: s.message }));
      if (s.import) {
        const i = s.import;
        li.append(el("span", { class: "import", "data-import-state": i.state, text: "import into " + i.album + ": " + i.done + "/" + i.total + " " + i.state + (i.message ? " (" + i.message + ")" : "") }));
      }
      if (canImport && s.state === "ready" && !(s.import && s.import.state === "running")) {
        const f = el("form", { class: "import-form" }, el("input", { name: "album", placeholder: "Album title", required: "" }), el("button", { type: "submit", text: "Import into album" }));
        f.addEventListener("submit", async (e) => {
          e.preventDefault();
          const r = await fetch(api + "/" + enc(s.name) + "/import", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ album: f.elements.album.value }) });
          if (!r.ok) alert((await json(r)).error || r.status);
          follow();
        });
        li.append(f);
      }
      const del = el("button", { type: "button", class: "delete", text: "Delete" });
      del.addEventListener("click", async () => {
        await fetch(api + "/" + enc(s.name), { method: "DELETE" });
        location.reload();
      });
      li.append(del);
      sets.append(li);
    }
    return all;
  }
  let timer = null;
  function follow() {
    if (timer) return;
    timer = setInterval(async () => {
      const all = await refresh();
      const busy = (all || []).some((s) => s.state === "waiting" || (s.import && s.import.state === "running"));
      if (!busy) {
        clearInterval(timer);
        timer = null;
        session.hidden = true;
        // A set became ready: the page's folder list shows it.
        if ((all || []).some((s) => s.state === "ready" && !document.querySelector('.folders a[href="' + s.path + '"]'))) location.reload();
      }
    }, 1000);
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = form.elements.name.value.trim();
    const r = await fetch(api, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }) });
    const answer = await json(r);
    if (r.status !== 201) { alert(answer.error || r.status); return; }
    session.replaceChildren(
      el("img", { src: api + "/" + enc(name) + "/qr.svg", alt: "QR code of the picking link" }),
      el("div", {}, el("p", { text: "Pick photos and videos in Google Photos, then press Done:" }),
        el("a", { id: "picker-link", href: answer.pickerUri, target: "_blank", rel: "noopener", text: "Open Google Photos" }),
        el("p", { class: "waiting", text: "Waiting for you to finish picking…" })));
    session.hidden = false;
    refresh();
    follow();
  });
  refresh().then((all) => {
    if ((all || []).some((s) => s.state === "waiting" || (s.import && s.import.state === "running"))) follow();
  });
})();
