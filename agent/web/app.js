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

function renderStatus(s) {
  $("#device").textContent = s.name || s.device;
  document.title = "Shortcut: " + (s.name || s.device);
  $("#version").textContent = s.version;
  const h = s.health;
  $("#health").textContent = h.status;
  $("#health").className = h.status === "ready" ? "ok" : "error";
  $("#reasons").textContent = h.reasons.join("; ");
  $("#mqtt").textContent = (h.mqtt.connected ? "connected to " : "not connected to ") + h.mqtt.broker +
    (h.mqtt.embedded ? " (embedded)" : "") + (h.mqtt.commands ? ", commands subscribed" : "");
  $("#model").textContent = [h.model.name, h.model.version].filter(Boolean).join(" ") +
    (h.model.head_version ? ", head " + h.model.head_version : "") +
    (h.accelerator && h.accelerator.in_use !== "cpu" ? ", on " + h.accelerator.in_use : "");
  if (cams.size === 0) {
    const box = $("#cameras");
    const sel = $("#teach-camera");
    for (const c of s.cameras) {
      box.append(cameraCard(c));
      sel.append(el("option", { value: c.id, text: c.id }));
    }
  }
  const rows = $("#camera-rows");
  rows.replaceChildren();
  for (const c of s.cameras) {
    const hc = h.cameras.find((x) => x.id === c.id) || {};
    cams.get(c.id)?.state && (cams.get(c.id).state.textContent = "state: " + c.state);
    rows.append(el("tr", {}, el("td", { text: c.id }), el("td", { text: c.state }), el("td", { text: hc.frames ?? "" }),
      el("td", { text: hc.last_frame || "" }), el("td", { text: hc.source ? hc.source.state : (hc.error || "") })));
  }
  $("#events").replaceChildren();
  for (const e of s.events) logEvent(e.type, e.data);
  $("#teach-off").hidden = s.learning;
  $("#teach-off").textContent = s.learning ? "" : "On-device learning is off on this agent (learning.enabled: false).";
}

function logEvent(type, d) {
  let text = type;
  if (type === "state") text = `${d.camera}: state ${d.previous} → ${d.label}`;
  else if (type === "event") text = `${d.kind}: ${d.message}`;
  else if (type === "reply") text = `${d.command} ${d.id}: ` + (d.ok ? "ok" : `${d.code}: ${d.error}`) + (d.warning ? " (" + d.warning + ")" : "");
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
    const thumbs = el("div", { class: "thumbs" }, ...g.examples.filter((e) => e.jpg).map((e) => el("img", { src: e.jpg, alt: g.label, loading: "lazy" })));
    box.append(el("div", { class: "group", "data-label": g.label },
      el("header", {}, el("strong", { text: g.label }), el("span", { text: ` ${g.examples.length} examples ` }), forget), thumbs));
  }
  const h = l.head;
  $("#train-result").textContent = h ? `head ${h.version}: ${h.labels.join(", ")}; validation accuracy ${(h.validation_accuracy * 100).toFixed(1)}% on ${h.validation_examples} examples` : "the model's own classifier is in use";
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
  es.addEventListener("reply", (m) => {
    const d = JSON.parse(m.data);
    logEvent("reply", d);
    if (["learn", "forget", "train", "reset", "import"].includes(d.command)) refreshLabels();
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
  follow();
}

start().catch((e) => banner(String(e)));
