// The agent's page: Live, Teach and Status over /api/v1 (agent/web.go).
// Everything live comes from one EventSource on /api/v1/events; the page
// reads /api/v1/status and /api/v1/labels when it (re)connects and after
// a command changes the examples.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    // A style attribute is blocked by the page's CSP (style-src 'self');
    // CSSOM properties are not.
    if (k === "text") e.textContent = v;
    else if (k === "width") e.style.width = v;
    else e.setAttribute(k, v);
  }
  e.append(...kids);
  return e;
};

let csrf = "";
let seq = 0;
const cams = new Map(); // id -> {label, state, bars}

function banner(msg) {
  const b = $("#banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...opts });
  if (r.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  return r;
}

// command sends one command, as MQTT would carry it, and returns its reply.
async function command(name, body = {}) {
  body.id = "web-" + Date.now() + "-" + (++seq);
  const r = await api("/api/v1/commands/" + name, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const ct = r.headers.get("Content-Type") || "";
  if (!ct.startsWith("application/json")) throw new Error(name + ": HTTP " + r.status + ": " + (await r.text()));
  return r.json();
}

function showTab() {
  const tab = (location.hash || "#live").slice(1);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== tab;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
}

function cameraCard(c) {
  const label = el("span", { class: "label", text: "…" });
  const state = el("span", { class: "state", text: "state: " + c.state });
  const bars = el("div", { class: "bars" });
  const card = el("div", { class: "camera", id: "cam-" + c.id },
    el("h3", { text: c.id }),
    el("img", { src: c.stream, alt: "camera " + c.id }),
    el("div", { class: "now" }, label, state),
    bars);
  cams.set(c.id, { label, state, bars });
  return card;
}

let status = null; // the last /api/v1/status

function renderStatus(s) {
  status = s;
  $("#device").textContent = s.name || s.device;
  document.title = "Shortcut: " + (s.name || s.device);
  $("#version").textContent = s.version;
  if (cams.size === 0) {
    const box = $("#cameras");
    const sel = $("#teach-camera");
    for (const c of s.cameras) {
      box.append(cameraCard(c));
      sel.append(el("option", { value: c.id, text: c.id }));
    }
  }
  renderHealth(s.health);
  renderModel(s.model, s.health);
  $("#events").replaceChildren();
  $("#camera-events").replaceChildren();
  for (const e of s.events) {
    if (e.type === "camera_event") logCameraEvent(e.data);
    else logEvent(e.type, e.data);
  }
  $("#teach-off").hidden = s.learning;
  $("#teach-off").textContent = s.learning ? "" : "On-device learning is off on this agent (learning.enabled: false).";
}

// renderHealth shows /healthz's view: it comes with the status and then
// live, as "health" events.
function renderHealth(h) {
  $("#health").textContent = h.status;
  $("#health").className = h.status === "ready" ? "ok" : "error";
  $("#reasons").textContent = h.reasons.join("; ");
  $("#mqtt").textContent = (h.mqtt.connected ? "connected to " : "not connected to ") + h.mqtt.broker +
    (h.mqtt.embedded ? " (embedded)" : "") + (h.mqtt.commands ? ", commands subscribed" : "") +
    (!h.mqtt.connected && h.mqtt.attempts ? `, ${h.mqtt.attempts} attempts failed` : "");
  $("#mqtt").className = h.mqtt.connected ? "ok" : "error";
  $("#status-model").textContent = [h.model.name, h.model.version].filter(Boolean).join(" ") +
    (h.model.head_version ? ", head " + h.model.head_version : "") +
    (h.accelerator && h.accelerator.in_use !== "cpu" ? ", on " + h.accelerator.in_use : "");
  const rows = $("#camera-rows");
  rows.replaceChildren();
  for (const hc of h.cameras) {
    const c = cams.get(hc.id);
    const state = c ? c.state.textContent.replace(/^state: /, "") : "";
    rows.append(el("tr", { "data-camera": hc.id }, el("td", { text: hc.id }), el("td", { text: state }), el("td", { text: hc.frames ?? "" }),
      el("td", { text: hc.last_frame || "" }), el("td", { text: hc.source ? hc.source.state : (hc.error || "") })));
  }
}

function renderModel(m, h) {
  $("#model-name").textContent = m.name;
  $("#model-version").textContent = m.version || "";
  $("#model-sha").textContent = m.sha256;
  $("#model-path").textContent = m.path;
  $("#model-input").textContent = `${m.input[0]}×${m.input[1]}×${m.input[2]}, embedding ${m.embedding_dim || "none"}`;
  const acc = h.accelerator;
  $("#model-accel").textContent = acc ? acc.in_use + (acc.reason ? " (" + acc.reason + ")" : "") : "cpu";
  $("#model-head").textContent = h.model.head_version || "the model's own classifier";
  $("#model-labels").textContent = m.labels.join(", ");
  $("#rollback").disabled = !m.previous;
  $("#model-previous").textContent = m.previous ? "to " + m.previous : "no previous model to roll back to";
}

function logCameraEvent(d) {
  const list = $("#camera-events");
  const text = `${(d.time || "").replace("T", " ").slice(0, 19)}  ${d.camera}: ${d.type} ${d.label} ${(d.score * 100).toFixed(0)}%` +
    (d.type === "end" ? ` after ${d.duration_s} s` : "");
  list.prepend(el("li", { text, "data-type": d.type, "data-label": d.label }));
  while (list.children.length > 50) list.lastChild.remove();
}

function logEvent(type, d) {
  let text = type;
  if (type === "state") text = `${d.camera}: state ${d.previous} → ${d.label}`;
  else if (type === "event") text = `${d.kind}: ${d.message}`;
  else if (type === "reply") text = `${d.command} ${d.id}: ` + (d.ok ? "ok" : `${d.code}: ${d.error}`) + (d.warning ? " (" + d.warning + ")" : "");
  else if (type === "progress" || type === "health") return; // live only
  const list = $("#events");
  list.prepend(el("li", { text: (d.time || "").replace("T", " ").slice(0, 19) + "  " + text }));
  while (list.children.length > 50) list.lastChild.remove();
}

function renderPrediction(p) {
  const c = cams.get(p.camera);
  if (!c) return;
  c.label.textContent = `${p.label} ${(p.score * 100).toFixed(0)}%`;
  c.label.dataset.label = p.label;
  c.bars.replaceChildren(...p.top_k.map((t) => el("div", { class: "bar" },
    el("span", { text: t.label, title: t.label }),
    el("div", { class: "track" }, el("div", { class: "fill", width: `${(t.score * 100).toFixed(1)}%` })),
    el("span", { text: (t.score * 100).toFixed(1) + "%" }))));
}

async function refreshStatus() {
  const r = await api("/api/v1/status");
  renderStatus(await r.json());
}

async function refreshLabels() {
  const r = await api("/api/v1/labels");
  if (!r.ok) return;
  const l = await r.json();
  const box = $("#labels");
  box.replaceChildren();
  if (l.unavailable) box.append(el("p", { class: "error", text: l.unavailable }));
  for (const g of l.examples) {
    const forget = el("button", { class: "danger", text: "Forget" });
    forget.addEventListener("click", async () => {
      if (!confirm(`Forget "${g.label}" and its ${g.examples.length} examples?`)) return;
      const rep = await command("forget", { label: g.label });
      if (!rep.ok) banner(rep.error);
      refreshLabels();
    });
    const thumbs = el("div", { class: "thumbs" }, ...g.examples.map((e) => exampleTile(g.label, e)));
    box.append(el("div", { class: "group", "data-label": g.label },
      el("header", {}, el("strong", { text: g.label }), el("span", { text: ` ${g.examples.length} examples ` }), forget), thumbs));
  }
  const h = l.head;
  $("#train-result").textContent = h ? `head ${h.version}: ${h.labels.join(", ")}; validation accuracy ${(h.validation_accuracy * 100).toFixed(1)}% on ${h.validation_examples} examples` : "the model's own classifier is in use";
}

// exampleTile is one stored example: its thumbnail and a button that
// deletes it (DELETE /api/v1/examples/<id>, the forget command).
function exampleTile(label, e) {
  const del = el("button", { class: "del", title: "Delete this example", "aria-label": "Delete this example of " + label, text: "×" });
  del.addEventListener("click", async () => {
    banner("");
    const r = await api("/api/v1/examples/" + e.id, { method: "DELETE", headers: { "X-CSRF-Token": csrf } });
    const rep = await r.json();
    if (!rep.ok) banner(rep.error);
    refreshLabels();
  });
  const pic = e.jpg ? el("img", { src: e.jpg, alt: label, loading: "lazy" }) : el("span", { class: "nopic", text: "no picture" });
  return el("div", { class: "example", "data-id": e.id }, pic, del);
}

// upload sends a form (photos, a model) and returns the reply.
async function upload(path, form) {
  const r = await api(path, { method: "POST", headers: { "X-CSRF-Token": csrf }, body: form });
  const ct = r.headers.get("Content-Type") || "";
  if (!ct.startsWith("application/json")) throw new Error(path + ": HTTP " + r.status + ": " + (await r.text()));
  return r.json();
}

async function uploadPhotos(ev) {
  ev.preventDefault();
  banner("");
  const form = new FormData();
  form.append("label", $("#teach-label").value.trim());
  form.append("camera", $("#teach-camera").value);
  for (const f of $("#upload-photos").files) form.append("photo", f, f.name);
  $("#upload-send").disabled = true;
  $("#teach-status").textContent = "uploading…";
  try {
    const rep = await upload("/api/v1/examples", form);
    if (rep.ok) {
      const n = rep.result.added;
      $("#teach-status").textContent = `${n} ${n === 1 ? "photo" : "photos"} of "${rep.result.label}" added (${rep.result.total} stored)`;
      $("#upload-photos").value = "";
    } else {
      $("#teach-status").textContent = "";
      banner(rep.error);
    }
  } catch (e) {
    banner(String(e));
  } finally {
    $("#upload-send").disabled = false;
    refreshLabels();
  }
}

async function exportModel() {
  banner("");
  const rep = await command("export");
  if (!rep.ok) { banner(rep.error); return; }
  const name = rep.result.path.split("/").pop();
  const a = el("a", { href: "/api/v1/exports/" + name, download: name, id: "export-link", text: name });
  $("#export-status").replaceChildren("Taught model: ", a);
  a.click();
}

async function importModel(ev) {
  ev.preventDefault();
  banner("");
  const form = new FormData();
  const f = $("#import-file").files[0];
  form.append("model", f, f.name);
  const rep = await upload("/api/v1/imports", form);
  if (rep.ok) $("#export-status").textContent = `head ${rep.result.head.version} imported: ${rep.result.head.labels.join(", ")}`;
  else banner(rep.error);
  refreshLabels();
}

async function uploadModel(ev) {
  ev.preventDefault();
  banner("");
  const form = new FormData();
  const f = $("#model-file").files[0];
  form.append("model", f, f.name);
  $("#model-send").disabled = true;
  $("#model-status").textContent = "uploading and checking " + f.name + "…";
  try {
    const rep = await upload("/api/v1/model", form);
    $("#model-status").textContent = rep.ok ? `${rep.result.model.name} (${rep.result.model.sha256.slice(0, 12)}) is running; head: ${rep.result.head}` : "";
    $("#model-status").className = rep.ok ? "ok" : "error";
    if (!rep.ok) banner(rep.error);
  } catch (e) {
    banner(String(e));
  } finally {
    $("#model-send").disabled = false;
    $("#model-file").value = "";
    refreshStatus();
  }
}

async function rollback() {
  if (!confirm("Go back to the previous model?")) return;
  banner("");
  const rep = await command("rollback");
  $("#model-status").textContent = rep.ok ? `rolled back: ${rep.result.model.name} (${rep.result.model.sha256.slice(0, 12)}) is running` : "";
  $("#model-status").className = rep.ok ? "ok" : "error";
  if (!rep.ok) banner(rep.error);
  refreshStatus();
}

async function teach(ev) {
  ev.preventDefault();
  banner("");
  const count = Number($("#teach-count").value);
  const btn = $("#teach-capture");
  btn.disabled = true;
  $("#teach-progress").max = count;
  $("#teach-progress").value = 0;
  $("#teach-status").textContent = "capturing…";
  try {
    const body = { label: $("#teach-label").value.trim(), camera: $("#teach-camera").value, count, interval_ms: 250 };
    const rep = await command("learn", body);
    if (rep.ok) {
      const res = rep.result;
      $("#teach-progress").value = res.added;
      $("#teach-status").textContent = `${res.added} examples of "${res.label}" captured (${res.total} stored)`;
    } else {
      $("#teach-status").textContent = "";
      banner(rep.error);
    }
  } catch (e) {
    banner(String(e));
  } finally {
    btn.disabled = false;
    refreshLabels();
  }
}

async function train() {
  banner("");
  $("#train").disabled = true;
  $("#train-result").textContent = "training…";
  try {
    const rep = await command("train");
    if (!rep.ok) banner(rep.error);
  } catch (e) {
    banner(String(e));
  } finally {
    $("#train").disabled = false;
    refreshLabels();
  }
}

async function reset() {
  if (!confirm("Remove the trained head and use the model's own classifier?")) return;
  const rep = await command("reset");
  if (!rep.ok) banner(rep.error);
  refreshLabels();
}

function follow() {
  const es = new EventSource("/api/v1/events");
  es.addEventListener("hello", () => { refreshStatus(); refreshLabels(); });
  es.addEventListener("prediction", (m) => renderPrediction(JSON.parse(m.data)));
  es.addEventListener("state", (m) => {
    const d = JSON.parse(m.data);
    const c = cams.get(d.camera);
    if (c) c.state.textContent = "state: " + d.label;
    logEvent("state", d);
  });
  es.addEventListener("event", (m) => { logEvent("event", JSON.parse(m.data)); refreshStatus(); });
  es.addEventListener("camera_event", (m) => logCameraEvent(JSON.parse(m.data)));
  es.addEventListener("health", (m) => renderHealth(JSON.parse(m.data)));
  es.addEventListener("reply", (m) => {
    const d = JSON.parse(m.data);
    logEvent("reply", d);
    if (["learn", "forget", "train", "reset", "import", "upload"].includes(d.command)) refreshLabels();
    if (["model", "rollback"].includes(d.command)) refreshStatus();
  });
  es.addEventListener("progress", (m) => {
    const d = JSON.parse(m.data);
    if ($("#teach-capture").disabled) {
      $("#teach-progress").max = d.requested;
      $("#teach-progress").value = d.added;
      $("#teach-status").textContent = `${d.added} / ${d.requested} examples of "${d.label}"`;
    }
  });
  es.onerror = () => banner("The live connection dropped; reconnecting…");
  es.onopen = () => banner("");
}

async function start() {
  showTab();
  window.addEventListener("hashchange", showTab);
  const s = await (await api("/api/v1/session")).json();
  csrf = s.csrf || "";
  if (s.user && s.csrf) {
    $("#logout").hidden = false;
    $("#user").textContent = s.user;
    $("#logout-csrf").value = csrf;
  }
  await refreshStatus();
  refreshLabels();
  $("#teach-form").addEventListener("submit", teach);
  $("#train").addEventListener("click", train);
  $("#reset").addEventListener("click", reset);
  $("#upload-form").addEventListener("submit", uploadPhotos);
  $("#export").addEventListener("click", () => exportModel().catch((e) => banner(String(e))));
  $("#import-form").addEventListener("submit", (ev) => importModel(ev).catch((e) => banner(String(e))));
  $("#model-form").addEventListener("submit", uploadModel);
  $("#rollback").addEventListener("click", () => rollback().catch((e) => banner(String(e))));
  follow();
}

start().catch((e) => banner(String(e)));
