// The wagate web console: a small single-page app over the public API (/v1), no framework, no
// third-party code. The API key lives in sessionStorage only (never in a URL, a cookie or a
// log) and goes out as a bearer header. Pages are built with textContent (never innerHTML), so
// nothing the API returns is run as markup. Views poll the API while they are shown.
"use strict";

const KEY = "wagate.apiKey";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const announcer = document.getElementById("announcer");
let timers = [];
let objectUrls = [];
let signingIn = false; // while a key is being tried, a 401 is the sign-in form's answer

// ------------------------------------------------------------------ helpers

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function announce(message) {
  announcer.textContent = "";
  window.setTimeout(() => { announcer.textContent = message; }, 50);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function stateBadge(state, id) {
  return h("span", { class: `state state-${state}`, id, "data-state": state, text: state });
}

function every(ms, fn) {
  fn();
  timers.push(window.setInterval(fn, ms));
}

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.retryAfter = null;
  }
}

async function api(method, path, body, accept) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 401 && !signingIn) {
    signOut("The key was refused: sign in again.");
    throw new ApiError(401, null);
  }
  if (!response.ok) {
    let parsed = null;
    try { parsed = await response.json(); } catch (e) { parsed = null; }
    const error = new ApiError(response.status, parsed);
    error.retryAfter = response.headers.get("Retry-After");
    throw error;
  }
  if (accept === "blob") return response.blob();
  if (response.status === 202 && response.headers.get("Content-Length") === "0") return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

function errorLine(error) {
  return h("p", { class: "error", role: "alert", text: error.message });
}

function page(title, ...content) {
  for (const timer of timers) window.clearInterval(timer);
  timers = [];
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  const heading = h("h1", { tabindex: "-1", text: title });
  main.replaceChildren(heading, ...content);
  document.title = `${title} · wagate console`;
  heading.focus();
}

// ------------------------------------------------------------------ sign-in

function signOut(message) {
  sessionStorage.removeItem(KEY);
  nav.hidden = true;
  location.hash = "#/sign-in";
  if (message) announce(message);
}

function signInPage() {
  nav.hidden = true;
  const status = h("div");
  const key = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "api-key-hint", spellcheck: "false",
  });
  const form = h("form", { "aria-label": "Sign in" },
    h("label", { for: "api-key", text: "API key" }), key,
    h("p", { class: "hint", id: "api-key-hint",
      text: "Your tenant's key (wg_live_…). It is kept in this tab's session storage only." }),
    h("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, key.value.trim());
    signingIn = true;
    try {
      await api("GET", "/v1/webhooks");
      key.value = "";
      location.hash = "#/sessions";
    } catch (error) {
      sessionStorage.removeItem(KEY);
      status.replaceChildren(errorLine(error.status === 401 ? new Error("That key was refused.") : error));
    } finally {
      signingIn = false;
    }
  });
  page("Sign in", form, status);
}

// ------------------------------------------------------------------ sessions

function sessionsPage() {
  const name = h("input", { id: "new-name", name: "name", maxlength: "128" });
  const phone = h("input", { id: "new-phone", name: "phone", inputmode: "tel",
    pattern: "\\+?[1-9][0-9]{6,15}", "aria-describedby": "new-phone-hint" });
  const status = h("div");
  const form = h("form", { "aria-labelledby": "create-heading" },
    h("label", { for: "new-name", text: "Name" }), name,
    h("label", { for: "new-phone", text: "Phone number for a pairing code (optional)" }), phone,
    h("p", { class: "hint", id: "new-phone-hint",
      text: "Leave it empty to link the phone by scanning a QR code." }),
    h("button", { type: "submit", text: "Create session" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() || null };
    if (phone.value.trim()) body.pairing_phone = phone.value.trim();
    try {
      const created = await api("POST", "/v1/sessions", body);
      location.hash = `#/sessions/${created.id}`;
    } catch (error) {
      status.replaceChildren(errorLine(error));
    }
  });
  const rows = h("tbody");
  const table = h("table", {},
    h("caption", { text: "Your sessions (live)" }),
    h("thead", {}, h("tr", {}, ["Name", "Session", "State", "WhatsApp id", "Reconnects"]
      .map((t) => h("th", { scope: "col", text: t })))),
    rows);
  const listError = h("div");
  page("Sessions", h("h2", { id: "create-heading", text: "Create a session" }), form, status,
    h("h2", { text: "Your sessions" }), table, listError);
  every(2000, async () => {
    try {
      const list = await api("GET", "/v1/sessions?limit=200");
      rows.replaceChildren(...list.items.map((s) => h("tr", {},
        h("td", { text: s.name || "–" }),
        h("td", {}, h("a", { href: `#/sessions/${s.id}`, text: s.id })),
        h("td", {}, stateBadge(s.state)),
        h("td", {}, h("code", { text: s.jid || "–" })),
        h("td", { text: String(s.reconnect_attempts) }))));
      if (!list.items.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: "5", text: "No sessions yet." })));
      listError.replaceChildren();
    } catch (error) {
      listError.replaceChildren(errorLine(error));
    }
  });
}

function sessionPage(id) {
  const state = h("p", {}, "State: ", stateBadge("…", "session-state"));
  const detail = h("p", { id: "session-detail" });
  const qrImage = h("img", { id: "qr-image", alt: "QR code: open WhatsApp on the phone, Linked devices, Link a device, and scan it" });
  const qrHint = h("p", { class: "hint", id: "qr-hint" });
  const pairingCode = h("p", { id: "pairing-code" });
  const pairing = h("section", { "aria-labelledby": "pairing-heading", hidden: true },
    h("h2", { id: "pairing-heading", text: "Link a phone" }),
    h("div", { class: "qr" }, qrImage, h("div", {}, qrHint, pairingCode)));
  const actionStatus = h("div");
  const act = (label, method, path, done) => h("button", { type: "button", class: "secondary",
    onclick: async () => {
      try { await api(method, path); announce(done); } catch (error) { actionStatus.replaceChildren(errorLine(error)); }
    }, text: label });
  const actions = h("div", { class: "actions" },
    act("Reconnect now", "POST", `/v1/sessions/${id}:recover`, "Reconnect requested."),
    act("Log out and stop", "DELETE", `/v1/sessions/${id}`, "Logout requested."));

  const to = h("input", { id: "send-to", name: "to", required: true, inputmode: "tel",
    placeholder: "+15551234567", "aria-describedby": "send-to-hint" });
  const text = h("textarea", { id: "send-text", name: "text", required: true, rows: "2", maxlength: "4096" });
  const sendStatus = h("div");
  const sendForm = h("form", { "aria-labelledby": "send-heading" },
    h("label", { for: "send-to", text: "Recipient" }), to,
    h("p", { class: "hint", id: "send-to-hint", text: "A phone number with its country code, or a WhatsApp id." }),
    h("label", { for: "send-text", text: "Message" }), text,
    h("button", { type: "submit", text: "Send test message" }));
  sendForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const sent = await api("POST", `/v1/sessions/${id}/messages`,
        { to: to.value.trim(), content: { type: "text", body: text.value } });
      text.value = "";
      sendStatus.replaceChildren(h("p", { text: `Accepted as ${sent.id}.` }));
      announce("Message accepted.");
    } catch (error) {
      sendStatus.replaceChildren(errorLine(error));
    }
  });
  const sentRows = h("tbody", { id: "sent-messages" });
  const sent = h("table", {}, h("caption", { text: "Sent messages and their status timelines (live)" }),
    h("thead", {}, h("tr", {}, ["To", "Text", "Status", "Timeline"].map((t) => h("th", { scope: "col", text: t })))),
    sentRows);
  const inRows = h("tbody", { id: "received-messages" });
  const received = h("table", {}, h("caption", { text: "Received messages" }),
    h("thead", {}, h("tr", {}, ["From", "Kind", "Content", "At"].map((t) => h("th", { scope: "col", text: t })))),
    inRows);
  const loadError = h("div");
  page(`Session ${id}`, state, detail, loadError, pairing, actions, actionStatus,
    h("h2", { id: "send-heading", text: "Send a test message" }), sendForm, sendStatus,
    h("h2", { text: "Messages" }), sent, received);

  let lastState = null;
  let lastQr = null;
  let qrBlocked = 0;
  every(1500, async () => {
    let s;
    try {
      s = await api("GET", `/v1/sessions/${id}`);
      loadError.replaceChildren();
    } catch (error) {
      loadError.replaceChildren(errorLine(error));
      return;
    }
    main.querySelector("h1").textContent = `Session ${s.name || s.id}`;
    state.replaceChildren("State: ", stateBadge(s.state, "session-state"));
    detail.textContent = [
      s.jid ? `WhatsApp id ${s.jid}` : null,
      s.last_reason ? `last disconnect reason ${s.last_reason}` : null,
      s.reconnect_attempts ? `${s.reconnect_attempts} reconnect attempt(s)` : null,
    ].filter(Boolean).join(" · ");
    if (s.state !== lastState) {
      if (lastState !== null) announce(`The session is ${s.state}.`);
      lastState = s.state;
    }
    pairing.hidden = s.state !== "pairing";
    pairingCode.textContent = s.pairing_code ? `Or enter this pairing code on the phone: ${s.pairing_code}` : "";
    if (s.state === "pairing" && s.has_qr && s.qr_expires_at !== lastQr && Date.now() > qrBlocked) {
      try {
        const blob = await api("GET", `/v1/sessions/${id}/qr?format=svg`, undefined, "blob");
        const url = URL.createObjectURL(blob);
        objectUrls.push(url);
        qrImage.src = url;
        qrImage.setAttribute("data-expires-at", s.qr_expires_at || "");
        lastQr = s.qr_expires_at;
        qrHint.textContent = `This QR code refreshes by itself until the phone links (this one expires ${when(s.qr_expires_at)}).`;
      } catch (error) {
        if (error.status === 429) qrBlocked = Date.now() + 1000 * Number(error.retryAfter || 30);
        qrHint.textContent = error.message;
      }
    }
  });
  every(2000, async () => {
    try {
      const out = await api("GET", `/v1/sessions/${id}/messages?direction=out&limit=20`);
      sentRows.replaceChildren(...out.items.map((m) => h("tr", { "data-message-id": m.id },
        h("td", {}, h("code", { text: m.to })),
        h("td", { text: m.content.body || m.content.type }),
        h("td", {}, stateBadge(m.status)),
        h("td", {}, h("ol", { class: "timeline", "aria-label": `Status timeline of ${m.id}` },
          Object.entries(m.status_times).sort((a, b) => a[1].localeCompare(b[1]))
            .map(([status, at]) => h("li", { "data-status": status, text: `${status} ${when(at)}` })))))));
      const inbound = await api("GET", `/v1/sessions/${id}/messages?direction=in&limit=20`);
      inRows.replaceChildren(...inbound.items.map((m) => h("tr", {},
        h("td", {}, h("code", { text: m.sender })), h("td", { text: m.kind }),
        h("td", { text: m.content.body || JSON.stringify(m.content) }), h("td", { text: when(m.ts) }))));
    } catch (error) {
      loadError.replaceChildren(errorLine(error));
    }
  });
}

// ------------------------------------------------------------------ webhook deliveries

function deliveriesPage() {
  const filter = h("select", { id: "delivery-state", name: "state" },
    ["", "retrying", "delivered", "failed"].map((v) => h("option", { value: v, text: v || "all" })));
  const rows = h("tbody", { id: "deliveries" });
  const status = h("div");
  const table = h("table", {}, h("caption", { text: "Webhook deliveries, newest first (live)" }),
    h("thead", {}, h("tr", {}, ["Event", "Session", "URL", "State", "Attempts", "Last answer", "Next retry", "Action"]
      .map((t) => h("th", { scope: "col", text: t })))), rows);
  const redeliver = async (d) => {
    try {
      await api("POST", `/v1/webhooks/deliveries/${d.id}:redeliver`);
      announce(`Redelivery of ${d.event_type} ${d.id} queued.`);
    } catch (error) {
      status.replaceChildren(errorLine(error));
    }
  };
  const load = async () => {
    try {
      const query = filter.value ? `&state=${encodeURIComponent(filter.value)}` : "";
      const list = await api("GET", `/v1/webhooks/deliveries?limit=50${query}`);
      rows.replaceChildren(...list.items.map((d) => h("tr", { "data-delivery-id": d.id },
        h("td", {}, d.event_type, h("br"), h("code", { text: d.id })),
        h("td", {}, h("code", { text: d.session_id })),
        h("td", {}, h("code", { text: d.url })),
        h("td", {}, stateBadge(d.state)),
        h("td", { text: `${d.attempts}${d.redeliveries ? ` (${d.redeliveries} redelivered)` : ""}` }),
        h("td", { text: d.last_status ? `HTTP ${d.last_status}` : (d.last_error || "–") }),
        h("td", { text: d.state === "retrying" ? when(d.next_retry_at) : "–" }),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => redeliver(d),
          "aria-label": `Redeliver ${d.event_type} event ${d.id}`, text: "Redeliver" })))));
      if (!list.items.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: "8", text: "No deliveries yet." })));
      status.replaceChildren();
    } catch (error) {
      status.replaceChildren(errorLine(error));
    }
  };
  filter.addEventListener("change", load);
  page("Webhook deliveries", h("form", { "aria-label": "Filter deliveries" },
    h("label", { for: "delivery-state", text: "Show" }), filter), status, table);
  every(3000, load);
}

// ------------------------------------------------------------------ health

function healthPage() {
  const summary = h("p", { id: "health-status" });
  const checks = h("tbody");
  const table = h("table", {}, h("caption", { text: "Dependencies of the api" }),
    h("thead", {}, h("tr", {}, ["Dependency", "Check", "Circuit breaker"].map((t) => h("th", { scope: "col", text: t })))),
    checks);
  page("Health", summary, table);
  every(5000, async () => {
    let health;
    try {
      const response = await fetch("/v1/health", { cache: "no-store", credentials: "omit" });
      health = await response.json();
    } catch (error) {
      summary.replaceChildren(errorLine(error));
      return;
    }
    summary.replaceChildren("Status: ", stateBadge(health.status === "ok" ? "connected" : "failed"),
      ` ${health.status} · version ${health.version}`);
    const names = [...new Set([...Object.keys(health.checks), ...Object.keys(health.breakers)])].sort();
    checks.replaceChildren(...names.map((n) => h("tr", {}, h("th", { scope: "row", text: n }),
      h("td", { text: health.checks[n] || "–" }), h("td", { text: health.breakers[n] || "–" }))));
  });
}

// ------------------------------------------------------------------ routing

function route() {
  const path = location.hash.replace(/^#/, "") || "/sessions";
  if (!sessionStorage.getItem(KEY)) {
    if (path !== "/health") return signInPage();
  } else {
    nav.hidden = false;
  }
  const session = path.match(/^\/sessions\/([A-Za-z0-9_.:-]+)$/);
  if (session) return sessionPage(session[1]);
  if (path === "/deliveries") return deliveriesPage();
  if (path === "/health") return healthPage();
  if (path === "/sign-in" && !sessionStorage.getItem(KEY)) return signInPage();
  return sessionsPage();
}

document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
route();
