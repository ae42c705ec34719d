// callroom web client. Plain JavaScript, no build step, no inline script
// (the Content-Security-Policy forbids it). Screens are sections of
// index.html chosen by the URL fragment; data comes from /api/v1 with the
// session cookie; live updates come from the event stream, whose events
// carry ids only: the client refetches what changed.
"use strict";

const $ = (sel) => document.querySelector(sel);

// Anything the Content-Security-Policy blocked, for the tests to see (and a
// developer in the console): the client must need no exception to it.
window.cspViolations = [];
window.scriptErrors = [];
window.addEventListener("error", (e) => window.scriptErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.scriptErrors.push(String(e.reason)));
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(e.violatedDirective + " " + e.blockedURI);
  console.error("CSP violation:", e.violatedDirective, e.blockedURI);
});

// el builds an element with text content only: API data is never parsed as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// ---- API --------------------------------------------------------------

class APIError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || "request failed (" + status + ")");
    this.status = status;
    this.field = problem && problem.field;
    this.problem = problem || {};
  }
}

// api answers the response's JSON, or throws an APIError for the problem.
async function api(method, path, body) {
  return (await apiResponse(method, path, body)).data;
}

// apiResponse is api with the status too, for answers where it says
// something (200 rather than 201: the thing already existed).
async function apiResponse(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/api/v1" + path, opts);
  let data = null;
  if (resp.status !== 204) {
    try { data = await resp.json(); } catch (_) { data = null; }
  }
  if (!resp.ok) {
    if (resp.status === 401 && path !== "/auth/login" && state.me) {
      signedOut("Your session has ended. Sign in again.");
    }
    throw new APIError(resp.status, data);
  }
  return { status: resp.status, data };
}

// ---- state ------------------------------------------------------------

const state = {
  me: null,            // {user, permissions}
  users: new Map(),    // id -> user, for names on timelines
  stream: null,        // EventSource
  listeners: new Set(),
  idleTimer: null,
  idleSeconds: 0,
  watchedPage: null,   // the page the console is watching
  openDetails: new Map(), // inbox: page id -> the page, details shown
  openSessions: new Map(), // admin: user id -> their sessions, shown
  editingRoles: new Set(), // admin: user ids whose roles are being changed
  tick: null,
};

function can(perm) { return !!(state.me && state.me.permissions.includes(perm)); }
function userName(id) { const u = state.users.get(id); return u ? u.name : "someone"; }
// personLabel names a person in a picker, with their roles.
function personLabel(u) { return u.name + " (" + u.roles.join(", ") + ")"; }

function notice(text) {
  const n = $("#notice");
  n.textContent = text;
  n.hidden = !text;
}

// ---- screens ----------------------------------------------------------

const screens = { console: showConsole, inbox: showInbox, schedules: showSchedules, admin: showAdmin, reports: showReports, chart: showChart };

function chartPatient() { return sessionStorage.getItem("chart_patient") || ""; }

function route() {
  if (!state.me) { showScreen("signin"); return; }
  let name = location.hash.replace(/^#/, "");
  if (!screens[name]) name = chartPatient() ? "chart" : can("pages.send") ? "console" : "inbox";
  showScreen(name);
  screens[name]().catch(fail);
}

function showScreen(name) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.screen === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  $("#top").hidden = name === "signin";
  $("#thread-view").hidden = !((name === "inbox" || name === "chart") && state.openThread);
}

function fail(err) {
  console.error(err);
  notice(err.message || String(err));
}

// ---- sign in / out, idle logoff ---------------------------------------

// The sign-in screen is a sequence of steps (forms): email and password,
// then, for a user with an authenticator, a code. The API is stateless:
// the second request repeats email and password with the code (kept only
// in this variable until it is sent).
let pendingSecondStep = null;

async function signInPassword(ev) {
  ev.preventDefault();
  const email = $("#signin-email").value.trim();
  const password = $("#signin-pw").value;
  showSignInMessage("");
  try {
    await signedIn(await api("POST", "/auth/login", { email, password }));
  } catch (err) {
    if (err.status === 401 && err.problem.mfa_required) {
      pendingSecondStep = { email, password };
      $("#signin-pw").value = "";
      $("#signin-password").hidden = true;
      $("#signin-second").hidden = false;
      $("#signin-code").focus();
      return;
    }
    showSignInMessage(err.status === 401 ? "Email or password is wrong." : err.message);
  }
}

async function signInSecondStep(ev) {
  ev.preventDefault();
  if (!pendingSecondStep) return;
  const code = $("#signin-code").value.trim();
  const body = { email: pendingSecondStep.email, password: pendingSecondStep.password };
  if (/^\d{6}$/.test(code)) body.totp_code = code; else body.recovery_code = code;
  try {
    const out = await api("POST", "/auth/login", body);
    pendingSecondStep = null;
    await signedIn(out);
  } catch (err) {
    $("#signin-code").value = "";
    showSignInMessage(err.status === 401 ? "That code is not right (or has been used). Try the next code." : err.message);
  }
}

function restartSignIn() {
  pendingSecondStep = null;
  $("#signin-code").value = "";
  $("#signin-second").hidden = true;
  $("#signin-password").hidden = false;
  showSignInMessage("");
  $("#signin-email").focus();
}

function showSignInMessage(text) {
  const m = $("#signin-message");
  m.textContent = text;
  m.hidden = !text;
}

async function signedIn(login) {
  $("#signin-pw").value = "";
  $("#signin-code").value = "";
  $("#signin-password").hidden = false;
  $("#signin-second").hidden = true;
  if (login && login.idle_timeout_seconds) {
    sessionStorage.setItem("idle_timeout_seconds", String(login.idle_timeout_seconds));
  }
  await loadMe();
}

async function loadMe() {
  try {
    state.me = await api("GET", "/me");
  } catch (err) {
    state.me = null;
    showScreen("signin");
    return;
  }
  $("#whoami").textContent = state.me.user.name;
  for (const a of document.querySelectorAll("nav a")) {
    const need = { console: "pages.send", inbox: "pages.read", schedules: "schedules.read", admin: "users.manage", reports: "audit.read" }[a.dataset.screen];
    a.hidden = a.dataset.screen === "chart" ? !chartPatient() : !can(need);
  }
  const meta = document.querySelector("meta[name=callroom-idle-seconds]");
  state.idleSeconds = Number(sessionStorage.getItem("idle_timeout_seconds") || (meta && meta.content) || 0);
  if (state.me.mfa_enrollment_required) {
    resetIdle();
    showScreen("mfa");
    startEnrolment().catch(fail);
    return;
  }
  try {
    const d = await api("GET", "/users");
    for (const u of d.users) state.users.set(u.id, u);
  } catch (_) { /* names fall back to "someone" */ }
  openStream();
  resetIdle();
  notice("");
  route();
}

async function signOut() {
  try { await api("POST", "/auth/logout"); } catch (_) { /* already gone */ }
  signedOut("You have signed out.");
}

// signedOut forgets everything shown and returns to the sign-in screen.
function signedOut(message) {
  state.me = null;
  if (state.stream) { state.stream.close(); state.stream = null; }
  state.lastEventId = "";
  clearTimeout(state.idleTimer);
  clearInterval(state.tick);
  state.watchedPage = null;
  state.openThread = null;
  state.openDetails.clear();
  state.openSessions.clear();
  state.editingRoles.clear();
  sessionStorage.removeItem("chart_patient");
  pendingSecondStep = null;
  $("#signin-second").hidden = true;
  $("#signin-password").hidden = false;
  $("#mfa-secret").textContent = "";
  $("#mfa-qr").hidden = true;
  for (const id of ["#mfa-recovery", "#admin-users", "#admin-services", "#chart-threads", "#chart-pages", "#recent-pages", "#page-timeline", "#open-pages", "#threads", "#messages", "#oncall-all"]) {
    $(id).replaceChildren();
  }
  clearReport();
  $("#page-live").hidden = true;
  $("#thread-view").hidden = true;
  $("#thread-h").textContent = "";
  $("#thread-members").textContent = "";
  $("#page-form").reset();
  $("#reply-form").reset();
  toggleNewThread(false);
  hideFeed();
  $("#sched-parts").replaceChildren();
  $("#calendar").replaceChildren();
  notice("");
  showScreen("signin");
  showSignInMessage(message);
  $("#signin-email").focus();
}

// Idle logoff: the server ends a session idle for its idle timeout; the
// client ends it at the same moment and clears the screen, so PHI does not
// stay on an unattended workstation.
function resetIdle() {
  if (!state.me || !state.idleSeconds) return;
  clearTimeout(state.idleTimer);
  state.idleTimer = setTimeout(async () => {
    try { await api("POST", "/auth/logout"); } catch (_) { /* expired already */ }
    signedOut("You were signed out after " + describeSeconds(state.idleSeconds) + " without activity.");
  }, state.idleSeconds * 1000);
}

function describeSeconds(s) {
  if (s >= 120) return Math.round(s / 60) + " minutes";
  return s + " seconds";
}

// ---- second factor enrolment ---------------------------------------------

async function startEnrolment() {
  $("#mfa-done").hidden = true;
  $("#mfa-form").hidden = false;
  const en = await api("POST", "/me/mfa/totp");
  $("#mfa-secret").textContent = en.secret;
  const qr = $("#mfa-qr");
  qr.src = "data:image/png;base64," + en.qr_code_png;
  qr.hidden = false;
  $("#mfa-code").focus();
}

async function confirmEnrolment(ev) {
  ev.preventDefault();
  const m = $("#mfa-error");
  m.hidden = true;
  try {
    const out = await api("POST", "/me/mfa/totp/confirm", { code: $("#mfa-code").value.trim() });
    $("#mfa-form").hidden = true;
    $("#mfa-qr").hidden = true;
    $("#mfa-secret").textContent = "";
    $("#mfa-recovery").replaceChildren(...out.recovery_codes.map((c) => el("li", {}, el("code", {}, c))));
    $("#mfa-done").hidden = false;
  } catch (e) {
    m.textContent = e.status === 422 || e.status === 401 ? "That code is not right; enter the code the app shows now." : e.message;
    m.hidden = false;
  }
}

// ---- event stream -------------------------------------------------------

// openStream follows the user's event stream. EventSource reconnects by
// itself (sending Last-Event-ID) after a dropped connection, but gives up for
// good after an error answer (the session ended, or an instance was briefly
// unavailable); then the client checks its session (a 401 signs it out) and
// reopens the stream where it left off, so no event is missed.
function openStream() {
  if (state.stream) state.stream.close();
  const q = state.lastEventId ? "?last_event_id=" + encodeURIComponent(state.lastEventId) : "";
  const es = new EventSource("/api/v1/events" + q);
  state.stream = es;
  const dispatch = (ev) => {
    if (ev.lastEventId) state.lastEventId = ev.lastEventId;
    let data = {};
    try { data = JSON.parse(ev.data); } catch (_) { return; }
    for (const f of state.listeners) f(data);
  };
  for (const t of ["page.updated", "page.notify", "message.created", "message.updated",
    "receipt.updated", "thread.updated", "stream.reset"]) {
    es.addEventListener(t, dispatch);
  }
  // A revoked session may be this one or another of the user's: ask.
  es.addEventListener("session.revoked", (ev) => {
    if (ev.lastEventId) state.lastEventId = ev.lastEventId;
    api("GET", "/me").catch(() => {});
  });
  es.addEventListener("open", () => { document.body.dataset.stream = "open"; });
  es.addEventListener("error", () => {
    document.body.dataset.stream = "reconnecting";
    if (es.readyState !== EventSource.CLOSED || state.stream !== es) return;
    setTimeout(async () => {
      if (!state.me || state.stream !== es) return;
      try { await api("GET", "/me"); } catch (_) { if (!state.me) return; }
      if (state.me && state.stream === es) openStream();
    }, 2000);
  });
}

state.listeners.add((e) => {
  if (!state.me) return;
  if (e.type === "page.updated" || e.type === "page.notify" || e.type === "stream.reset") {
    if (state.watchedPage && (e.type === "stream.reset" || e.page_id === state.watchedPage)) {
      refreshWatchedPage().catch(fail);
    }
    if (!$("#inbox").hidden) loadOpenPages().catch(fail);
    if (!$("#chart").hidden) loadChartPages().catch(fail);
    if (!$("#console").hidden) loadRecentPages().catch(fail);
  }
  if (e.type.startsWith("message.") || e.type.startsWith("thread.") || e.type.startsWith("receipt.")) {
    if (!$("#inbox").hidden || !$("#chart").hidden) inboxEvent(e).catch(fail);
  }
});

// ---- paging console ---------------------------------------------------

async function showConsole() {
  const sel = $("#page-service");
  if (!sel.options.length) {
    const d = await api("GET", "/services");
    sel.replaceChildren(el("option", { value: "" }, "Choose a service"),
      ...d.services.map((s) => el("option", { value: s.id }, s.name)));
    const people = [...state.users.values()].filter((u) => u.active && u.id !== state.me.user.id)
      .sort((a, b) => a.name.localeCompare(b.name));
    $("#page-person").replaceChildren(el("option", { value: "" }, "Choose a person"),
      ...people.map((u) => el("option", { value: u.id }, personLabel(u))));
  }
  await loadRecentPages();
}

function pageTarget() {
  return document.querySelector("input[name=target]:checked").value;
}

function targetChanged() {
  const person = pageTarget() === "person";
  $("#page-service").hidden = person;
  $("label[for=page-service]").hidden = person;
  $("#page-person").hidden = !person;
  $("label[for=page-person]").hidden = !person;
  showOnCall().catch(fail);
}

// showOnCall answers "who will this page reach right now?": for a service,
// whoever the first step of its escalation policy names or has on call.
async function showOnCall() {
  const out = $("#oncall-now");
  out.textContent = "";
  if (pageTarget() === "person") {
    const id = $("#page-person").value;
    if (id) out.textContent = "Goes to " + userName(id) + ".";
    return;
  }
  const id = $("#page-service").value;
  if (!id) return;
  const svc = await api("GET", "/services/" + id);
  const policy = await api("GET", "/escalation-policies/" + svc.escalation_policy_id);
  const step = policy.steps[0];
  if (!step) { out.textContent = "This service's policy has no steps."; return; }
  const names = [];
  for (const t of step.targets) {
    if (t.user_id) names.push(userName(t.user_id));
    if (t.schedule_id) {
      const oc = await api("GET", "/schedules/" + t.schedule_id + "/on-call");
      for (const u of oc.users) names.push(u.name);
    }
  }
  out.textContent = names.length ? "On call now: " + names.join(", ") + "." : "No one is on call now: the page will escalate.";
  out.classList.toggle("warning", !names.length);
}

async function sendPage(ev) {
  ev.preventDefault();
  const err = $("#page-error");
  err.hidden = true;
  const body = {
    priority: document.querySelector("input[name=priority]:checked").value,
    summary: $("#page-summary").value.trim(),
  };
  if (pageTarget() === "person") body.user_id = $("#page-person").value || undefined;
  else body.service_id = $("#page-service").value || undefined;
  if ($("#page-body").value.trim()) body.body = $("#page-body").value.trim();
  if ($("#page-patient").value.trim()) body.patient_ref = $("#page-patient").value.trim();
  try {
    const p = await api("POST", "/pages", body);
    $("#page-summary").value = "";
    $("#page-body").value = "";
    $("#page-patient").value = "";
    watchPage(p.id);
    loadRecentPages().catch(fail);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
    const field = { service_id: "#page-service", user_id: "#page-person", summary: "#page-summary",
      body: "#page-body", patient_ref: "#page-patient" }[e.field];
    if (field) $(field).focus();
  }
}

function watchPage(id) {
  state.watchedPage = id;
  $("#page-live").hidden = false;
  clearInterval(state.tick);
  state.tick = setInterval(renderElapsed, 1000);
  refreshWatchedPage().catch(fail);
}

let watched = null;

async function refreshWatchedPage() {
  const id = state.watchedPage;
  if (!id) return;
  const p = await api("GET", "/pages/" + id);
  if (state.watchedPage !== id) return;
  watched = p;
  const status = $("#page-status");
  status.textContent = statusText(p);
  status.dataset.status = p.status;
  $("#page-timeline").replaceChildren(...p.timeline.map(timelineItem));
  renderElapsed();
}

function statusText(p) {
  const who = (id) => (id ? " by " + userName(id) : "");
  switch (p.status) {
    case "acknowledged": return "Acknowledged" + who(p.acknowledged_by);
    case "resolved": return "Resolved" + who(p.resolved_by);
    case "cancelled": return "Cancelled";
    case "unanswered": return "Unanswered: no one acknowledged";
    default: return "Open: waiting for acknowledgement";
  }
}

function renderElapsed() {
  if (!watched) return;
  const end = watched.acknowledged_at || watched.resolved_at;
  const ms = (end ? new Date(end) : new Date()) - new Date(watched.created_at);
  const s = Math.max(0, Math.round(ms / 1000));
  const txt = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  $("#page-elapsed").textContent = (end ? "answered after " : "elapsed ") + txt;
}

const kindText = {
  created: "sent", step: "escalation step", notified: "notified", delivered: "delivered", read: "read",
  acknowledged: "acknowledged", resolved: "resolved", cancelled: "cancelled", escalated: "escalated",
  failed: "delivery failed", fallback: "fallback alarmed", no_one_on_call: "no one on call",
  unanswered: "unanswered", repeated: "repeated from the top",
};

function timelineItem(t) {
  const at = new Date(t.at).toLocaleTimeString();
  let text = kindText[t.kind] || t.kind;
  if (t.kind === "step" && t.step !== undefined) text = "escalation step " + (t.step + 1);
  if (t.user_id) {
    const prep = t.kind === "created" || t.kind === "acknowledged" || t.kind === "resolved" ||
      t.kind === "cancelled" || t.kind === "escalated" ? " by " : ": ";
    text += prep + userName(t.user_id);
  }
  if (t.channel) text += " (" + t.channel.replace("_", "-") + ")";
  if (t.detail) text += " — " + t.detail;
  return el("li", { "data-kind": t.kind }, el("time", { datetime: t.at }, at), " ", text);
}

async function loadRecentPages() {
  if (!can("pages.read")) return;
  const d = await api("GET", "/pages?limit=10");
  $("#recent-pages").replaceChildren(...d.pages.map((p) => el("li", {},
    el("button", { type: "button", class: "link", on: { click: () => watchPage(p.id) } },
      el("span", { class: "badge " + p.priority }, p.priority.toUpperCase()), " ",
      p.summary, " — ", p.service_name || userName(p.user_id), " — ", p.status))));
}

// ---- inbox ----------------------------------------------------------------

async function showInbox() {
  $("#nt-open").hidden = !isClinician(state.me.user);
  await Promise.all([loadOpenPages(), loadThreads()]);
  if (state.openThread) await refreshThread(false);
}

// Open pages that need someone's acknowledgement, STAT first.
async function loadOpenPages() {
  const d = await api("GET", "/pages?status=open&recipient=me&limit=50");
  const order = { stat: 0, asap: 1, urgent: 2, routine: 3 };
  d.pages.sort((a, b) => order[a.priority] - order[b.priority] || new Date(a.created_at) - new Date(b.created_at));
  const list = $("#open-pages");
  if (!d.pages.length) { list.replaceChildren(el("li", { class: "empty" }, "No open pages.")); return; }
  list.replaceChildren(...d.pages.map((p) => el("li", { class: "page-item", "data-page": p.id },
    el("span", { class: "badge " + p.priority }, p.priority.toUpperCase()), " ",
    el("span", { class: "summary" }, p.summary), " ",
    el("span", { class: "meta" }, (p.service_name || "direct") + ", from " + userName(p.created_by)), " ",
    el("button", { type: "button", class: "ack", on: { click: () => acknowledge(p.id) } }, "Acknowledge"),
    el("button", { type: "button", class: "details", "aria-expanded": String(state.openDetails.has(p.id)),
      on: { click: () => togglePageDetails(p.id) } }, "Details"),
    detailsBox(p.id))));
}

// The inbox's open page details, by page id, kept across redraws (events
// redraw the list often).
function detailsBox(id) {
  const d = state.openDetails.get(id);
  if (!d) return el("div", { class: "page-details", hidden: true });
  return el("div", { class: "page-details" },
    d.body ? el("p", { class: "msg-text" }, d.body) : null,
    d.patient_ref ? el("p", { class: "meta" }, "Patient: " + d.patient_ref) : null,
    el("ol", { class: "timeline" }, ...d.timeline.map(timelineItem)));
}

// togglePageDetails opens a page: its details and timeline. Opening it is
// what tells the sender it was read (the server records the read).
async function togglePageDetails(id) {
  if (state.openDetails.has(id)) state.openDetails.delete(id);
  else {
    try { state.openDetails.set(id, await api("GET", "/pages/" + id)); } catch (e) { fail(e); }
  }
  await loadOpenPages();
}

async function acknowledge(id) {
  try {
    await api("POST", "/pages/" + id + "/acknowledge");
    notice("Page acknowledged.");
  } catch (e) { fail(e); }
  await loadOpenPages();
}

// Threads, most recently active first, with unread counts.
async function loadThreads() {
  const d = await api("GET", "/threads?limit=100");
  const list = $("#threads");
  if (!d.threads.length) { list.replaceChildren(el("li", { class: "empty" }, "No threads yet.")); return; }
  list.replaceChildren(...d.threads.map(threadItem));
}

function threadItem(t) {
  return el("li", { "data-thread": t.id, class: t.id === state.openThread ? "current" : null },
    el("button", { type: "button", class: "link", on: { click: () => openThread(t.id) } }, threadTitle(t)), " ",
    t.patient_ref ? el("span", { class: "meta" }, "patient thread") : null, " ",
    t.unread ? el("span", { class: "unread", "aria-label": t.unread + " unread" }, t.unread + " unread") : null);
}

function threadTitle(t) {
  if (t.name) return t.name;
  const others = (t.members || []).filter((m) => m.user_id !== state.me.user.id).map((m) => m.name);
  return others.join(", ") || "Thread";
}

// ---- starting a conversation ------------------------------------------------

// Only nurses and physicians start threads and are added to them (the API
// refuses anyone else), so the form is theirs and offers only them.
function isClinician(u) { return u.roles.includes("nurse") || u.roles.includes("physician"); }

function colleagues() {
  return [...state.users.values()].filter((u) => u.active && u.id !== state.me.user.id && isClinician(u))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function newThreadKind() { return document.querySelector("input[name=nt-kind]:checked").value; }

// toggleNewThread opens the form with the directory as loaded at sign-in,
// or closes and clears it.
function toggleNewThread(open) {
  const form = $("#nt-form");
  form.hidden = !open;
  $("#nt-open").setAttribute("aria-expanded", String(open));
  form.reset();
  newThreadKindChanged();
  if (!open) {
    $("#nt-person").replaceChildren();
    $("#nt-members").replaceChildren();
    return;
  }
  notice("");
  const people = colleagues();
  $("#nt-person").replaceChildren(el("option", { value: "" }, "Choose a colleague"),
    ...people.map((u) => el("option", { value: u.id }, personLabel(u))));
  $("#nt-members").replaceChildren(...people.map((u) => el("label", { "data-search": personLabel(u).toLowerCase() },
    el("input", { type: "checkbox", name: "nt-member", value: u.id }), " " + personLabel(u))));
  $("input[name=nt-kind]:checked").focus();
}

function newThreadKindChanged() {
  const group = newThreadKind() === "group";
  $("#nt-direct").hidden = group;
  $("#nt-group").hidden = !group;
  newThreadError(null);
}

// filterMembers narrows the member list to names or roles containing what
// was typed; people already ticked stay in view.
function filterMembers() {
  const q = $("#nt-filter").value.trim().toLowerCase();
  for (const l of $("#nt-members").children) {
    l.hidden = !!q && !l.dataset.search.includes(q) && !l.querySelector("input").checked;
  }
}

// newThreadError shows the API's refusal under the form. The problem names
// the field: its control is marked invalid, described by the message and
// focused, and the message says which control it is about.
function newThreadError(e) {
  const m = $("#nt-error");
  for (const c of document.querySelectorAll("#nt-form [aria-invalid]")) {
    c.removeAttribute("aria-invalid");
    c.removeAttribute("aria-describedby");
  }
  m.textContent = "";
  m.hidden = !e;
  if (!e) return;
  const field = (e.field || "").split(".")[0];
  const target = field === "name" ? $("#nt-name")
    : field === "member_ids" ? (newThreadKind() === "direct" ? $("#nt-person") : $("#nt-members")) : null;
  const about = { "nt-name": "Group name", "nt-person": "Colleague", "nt-members": "Members" };
  const fp = (e.problem.errors || [])[0];
  // Ids in a detail ("… is not an active nurse or physician") become names.
  const detail = fp ? fp.detail.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, (id) => userName(id)) : e.message;
  m.textContent = target ? about[target.id] + ": " + detail + "." : e.message;
  if (!target) return;
  target.setAttribute("aria-invalid", "true");
  target.setAttribute("aria-describedby", "nt-error");
  (target.querySelector("input") || target).focus();
}

// startThread asks for the thread and opens it as a click in the list
// would. A direct thread the pair already has is answered 200 and opened.
async function startThread(ev) {
  ev.preventDefault();
  newThreadError(null);
  const body = newThreadKind() === "direct"
    ? { kind: "direct", member_ids: $("#nt-person").value ? [$("#nt-person").value] : [] }
    : { kind: "group", name: $("#nt-name").value.trim(),
      member_ids: [...document.querySelectorAll("#nt-members input:checked")].map((c) => c.value) };
  let out;
  try {
    out = await apiResponse("POST", "/threads", body);
  } catch (e) { newThreadError(e); return; }
  const t = out.data;
  toggleNewThread(false);
  await openThread(t.id);
  notice(out.status === 200 ? "You already have a conversation with " + threadTitle(t) + ": it is open below."
    : "Conversation started: " + threadTitle(t) + ".");
}

// openThread shows a thread's messages, oldest first, and marks them read.
async function openThread(id) {
  state.openThread = id;
  $("#thread-view").hidden = false;
  await refreshThread(true);
  $("#reply-text").focus();
}

async function refreshThread(markRead) {
  const id = state.openThread;
  if (!id) return;
  const [t, page] = await Promise.all([api("GET", "/threads/" + id), api("GET", "/threads/" + id + "/messages?limit=100")]);
  if (state.openThread !== id) return;
  $("#thread-h").textContent = threadTitle(t);
  $("#thread-members").textContent = "Members: " + t.members.map((m) => m.name).join(", ");
  const msgs = page.messages.slice().reverse();
  $("#messages").replaceChildren(...msgs.map((m) => messageItem(id, m)));
  const newest = page.messages[0];
  if (markRead && newest && t.unread > 0) {
    await api("POST", "/threads/" + id + "/read", { message_id: newest.id });
  }
  refreshLists().catch(fail);
}

// refreshLists redraws the thread list on screen: the inbox's or the chart's.
async function refreshLists() {
  if (!$("#inbox").hidden) await loadThreads();
  if (!$("#chart").hidden) await loadChartThreads();
}

function messageItem(threadID, m) {
  const mine = m.author_id === state.me.user.id;
  const who = m.system ? "callroom" : userName(m.author_id);
  const parts = [
    el("div", { class: "msg-head" },
      m.priority && m.priority !== "routine" ? el("span", { class: "badge " + m.priority }, m.priority.toUpperCase()) : null, " ",
      el("strong", {}, mine ? "You" : who), " ",
      el("time", { datetime: m.created_at, class: "meta" }, new Date(m.created_at).toLocaleTimeString()),
      m.edited_at ? el("span", { class: "meta" }, " (edited)") : null),
    el("p", { class: "msg-text" }, m.recalled ? "Message recalled." : m.purged ? "Removed by the retention policy." : m.text),
  ];
  for (const a of m.attachments || []) {
    parts.push(el("p", {}, el("a", { href: "/api/v1/threads/" + threadID + "/attachments/" + a.id, target: "_blank", rel: "noopener" },
      "Attachment: " + (a.filename || a.content_type) + " (" + Math.ceil(a.size / 1024) + " KB)")));
  }
  const receipts = [];
  if (m.read_by && m.read_by.of > 0) receipts.push("read by " + m.read_by.count + " of " + m.read_by.of);
  if (m.ack_required && m.acknowledged_by) receipts.push("acknowledged by " + m.acknowledged_by.count + " of " + m.acknowledged_by.of);
  if (receipts.length) parts.push(el("p", { class: "receipts meta" }, receipts.join(" · ")));
  if (m.ack_required && !mine && !(m.acknowledged_by && m.acknowledged_by.users.some((u) => u.user_id === state.me.user.id))) {
    parts.push(el("button", { type: "button", class: "ack", on: { click: () => acknowledgeMessage(threadID, m.id) } }, "Acknowledge"));
  }
  return el("li", { "data-message": m.id, class: mine ? "mine" : null }, ...parts);
}

async function acknowledgeMessage(threadID, messageID) {
  try {
    await api("POST", "/threads/" + threadID + "/messages/" + messageID + "/acknowledge");
  } catch (e) { fail(e); }
  await refreshThread(false);
}

async function sendReply(ev) {
  ev.preventDefault();
  const id = state.openThread;
  const err = $("#reply-error");
  err.hidden = true;
  const body = { text: $("#reply-text").value.trim() };
  try {
    const file = $("#reply-file").files[0];
    if (file) {
      const resp = await fetch("/api/v1/threads/" + id + "/attachments?filename=" + encodeURIComponent(file.name),
        { method: "POST", credentials: "same-origin", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
      const out = await resp.json();
      if (!resp.ok) throw new APIError(resp.status, out);
      body.attachment_ids = [out.id];
    }
    await api("POST", "/threads/" + id + "/messages", body);
    $("#reply-text").value = "";
    $("#reply-file").value = "";
    await refreshThread(false);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

// inboxEvent applies a thread event: the open thread is redrawn (and what
// arrived in it marked read, since it is on screen); the list's unread
// counts are refreshed.
async function inboxEvent(e) {
  if (e.thread_id && e.thread_id === state.openThread) {
    await refreshThread(e.type === "message.created");
  } else {
    await refreshLists();
  }
}

// ---- patient chart ------------------------------------------------------

// The chart view shows one patient's pages and threads: the patient whose
// chart the EHR launched callroom from (kept in this tab's sessionStorage,
// never in the URL).
async function showChart() {
  const ref = chartPatient();
  $("#chart-none").hidden = !!ref;
  $("#chart-new-thread").hidden = !ref;
  $("#chart-patient").textContent = ref ? "Patient: " + ref : "";
  if (!ref) return;
  await Promise.all([loadChartThreads(), loadChartPages()]);
  if (state.openThread) await refreshThread(false);
}

async function loadChartThreads() {
  const ref = chartPatient();
  if (!ref) return;
  const d = await api("GET", "/patients/" + encodeURIComponent(ref) + "/threads");
  $("#chart-threads").replaceChildren(...(d.threads.length ? d.threads.map(threadItem)
    : [el("li", { class: "empty" }, "You are in no thread about this patient.")]));
}

async function loadChartPages() {
  const ref = chartPatient();
  if (!ref || !can("pages.read")) return;
  const d = await api("GET", "/pages?limit=200");
  const mine = d.pages.filter((p) => p.patient_ref === ref);
  $("#chart-pages").replaceChildren(...(mine.length ? mine.map((p) => el("li", {},
    el("span", { class: "badge " + p.priority }, p.priority.toUpperCase()), " ", p.summary, " — ",
    p.service_name || userName(p.user_id), " — ", p.status)) : [el("li", { class: "empty" }, "No pages about this patient.")]));
}

async function startChartThread() {
  try {
    const t = await api("POST", "/threads", { kind: "patient", patient_ref: chartPatient(), name: "Care team" });
    await loadChartThreads();
    await openThread(t.id);
  } catch (e) { fail(e); }
}

// ---- admin --------------------------------------------------------------

function adminError(e) {
  const m = $("#admin-error");
  m.textContent = e ? e.message : "";
  m.hidden = !e;
}

async function showAdmin() {
  adminError(null);
  await Promise.all([loadAdminUsers(), loadAdminServices()]);
}

async function loadAdminUsers() {
  const d = await api("GET", "/users");
  state.users.clear();
  for (const u of d.users) state.users.set(u.id, u);
  $("#admin-users").replaceChildren(...d.users.map((u) => el("li", { "data-user": u.id, class: u.active ? null : "inactive" },
    el("strong", {}, u.name), " ", el("span", { class: "meta" }, u.email + " · " + u.roles.join(", ") + (u.npi ? " · NPI " + u.npi : "") +
      (u.active ? "" : " · deactivated")), " ",
    u.id === state.me.user.id ? null : el("button", { type: "button", class: "toggle-active", on: { click: () => setActive(u, !u.active) } },
      (u.active ? "Deactivate " : "Reactivate ") + u.name),
    u.id === state.me.user.id ? null : el("button", { type: "button", class: "roles", "aria-expanded": String(state.editingRoles.has(u.id)),
      on: { click: () => toggleRoles(u.id) } }, "Change roles of " + u.name),
    el("button", { type: "button", class: "sessions", "aria-expanded": String(state.openSessions.has(u.id)),
      on: { click: () => toggleSessions(u.id) } }, "Sessions of " + u.name),
    rolesBox(u), sessionsBox(u))));
}

// Roles: an administrator changes another user's roles (their own stay as
// they are here, so nobody locks the last administrator out by a click).
// The change applies at the user's next request: permissions are looked up
// per request.
const allRoles = ["nurse", "physician", "scheduler", "admin", "auditor"];

function rolesBox(u) {
  if (!state.editingRoles.has(u.id)) return null;
  return el("form", { class: "roles-box", on: { submit: (ev) => saveRoles(ev, u) } },
    el("fieldset", {}, el("legend", {}, "Roles of " + u.name),
      el("span", { class: "role-choices" }, ...allRoles.map((r) => el("label", {},
        el("input", { type: "checkbox", name: "role", value: r, checked: u.roles.includes(r) }), " " + r))),
      el("button", { type: "submit", class: "save-roles" }, "Save roles of " + u.name)));
}

async function toggleRoles(id) {
  adminError(null);
  if (state.editingRoles.has(id)) state.editingRoles.delete(id); else state.editingRoles.add(id);
  await loadAdminUsers();
}

async function saveRoles(ev, u) {
  ev.preventDefault();
  adminError(null);
  const roles = [...ev.target.querySelectorAll("input[name=role]:checked")].map((c) => c.value);
  try {
    await api("PATCH", "/users/" + u.id, { roles });
    state.editingRoles.delete(u.id);
    await loadAdminUsers();
    notice("Roles of " + u.name + " saved: " + (roles.join(", ") || "none") + ".");
  } catch (e) { adminError(e); }
}

// Sessions and devices: an administrator sees where a user is signed in and
// signs them out of one session or everywhere (a lost phone).
function sessionsBox(u) {
  const d = state.openSessions.get(u.id);
  if (!d) return null;
  const live = d.sessions.filter((x) => !x.revoked_at);
  return el("div", { class: "sessions-box" },
    el("ul", {}, ...(live.length ? live.map((x) => el("li", { "data-session": x.id },
      x.method + " · " + x.client_addr + " · " + (x.user_agent || "").slice(0, 40) + " · last seen " + new Date(x.last_seen_at).toLocaleString(), " ",
      el("button", { type: "button", class: "revoke", on: { click: () => revokeSession(u.id, x.id) } }, "Sign out this session")))
      : [el("li", { class: "empty" }, "No open sessions.")])),
    el("button", { type: "button", class: "revoke-all", on: { click: () => revokeAll(u.id) } }, "Sign " + u.name + " out everywhere"));
}

async function toggleSessions(id) {
  adminError(null);
  if (state.openSessions.has(id)) state.openSessions.delete(id);
  else {
    try { state.openSessions.set(id, await api("GET", "/users/" + id + "/sessions")); } catch (e) { adminError(e); }
  }
  await loadAdminUsers();
}

async function revokeSession(userID, sessionID) {
  adminError(null);
  try { await api("DELETE", "/users/" + userID + "/sessions/" + sessionID); } catch (e) { adminError(e); }
  state.openSessions.delete(userID);
  await toggleSessions(userID);
}

async function revokeAll(userID) {
  adminError(null);
  try { await api("POST", "/users/" + userID + "/revoke-credentials"); } catch (e) { adminError(e); }
  state.openSessions.delete(userID);
  await toggleSessions(userID);
}

async function setActive(u, active) {
  adminError(null);
  try { await api("PATCH", "/users/" + u.id, { active }); } catch (e) { adminError(e); }
  await loadAdminUsers();
}

async function loadAdminServices() {
  const [svcs, pols, scheds] = await Promise.all([api("GET", "/services"), api("GET", "/escalation-policies"), api("GET", "/schedules")]);
  const byID = new Map(pols.escalation_policies.map((p) => [p.id, p]));
  const schedName = new Map(scheds.schedules.map((s) => [s.id, s.name]));
  const target = (t) => (t.user_id ? userName(t.user_id) : "on call for " + (schedName.get(t.schedule_id) || "a schedule"));
  $("#admin-services").replaceChildren(...svcs.services.map((svc) => {
    const p = byID.get(svc.escalation_policy_id);
    const steps = p ? p.steps.map((st, i) => (i + 1) + ". " + st.targets.map(target).join(", ") + " (" + Math.round(st.delay_seconds / 60) + " min)").join("; ") : "";
    return el("li", { "data-service": svc.id }, el("strong", {}, svc.name), " ",
      el("span", { class: "meta" }, p ? "policy " + p.name + ": " + steps + (p.repeat ? ", repeated " + p.repeat + "×" : "") : ""));
  }));
  const options = [el("option", { value: "" }, "Choose"),
    ...scheds.schedules.map((s) => el("option", { value: "schedule:" + s.id }, "Whoever is on call for " + s.name)),
    ...[...state.users.values()].filter((u) => u.active).map((u) => el("option", { value: "user:" + u.id }, u.name))];
  for (const sel of document.querySelectorAll("select.targets")) sel.replaceChildren(...options.map((o) => o.cloneNode(true)));
}

function targetOf(v) {
  const [kind, id] = v.split(":");
  return kind === "schedule" ? { schedule_id: id } : kind === "user" ? { user_id: id } : null;
}

async function savePolicy(ev) {
  ev.preventDefault();
  adminError(null);
  const name = $("#svc-name").value.trim();
  const delay = Number($("#pol-delay").value) * 60;
  const steps = [];
  for (const sel of ["#pol-first", "#pol-second"]) {
    const t = targetOf($(sel).value);
    if (t) steps.push({ delay_seconds: delay, targets: [t] });
  }
  try {
    const p = await api("POST", "/escalation-policies", { name, repeat: Number($("#pol-repeat").value), steps });
    await api("POST", "/services", { name, escalation_policy_id: p.id });
    ev.target.reset();
    $("#page-service").replaceChildren(); // the console reloads its list
    await loadAdminServices();
    notice("Service " + name + " added.");
  } catch (e) { adminError(e); }
}

async function saveUser(ev) {
  ev.preventDefault();
  adminError(null);
  const body = { name: $("#user-name").value.trim(), email: $("#user-email").value.trim(),
    roles: [...document.querySelectorAll("#user-form input[name=role]:checked")].map((c) => c.value) };
  if ($("#user-npi").value.trim()) body.npi = $("#user-npi").value.trim();
  if ($("#user-password").value) body.password = $("#user-password").value;
  try {
    await api("POST", "/users", body);
    ev.target.reset();
    await loadAdminUsers();
    notice("User " + body.name + " added.");
  } catch (e) {
    adminError(e);
    const f = { name: "#user-name", email: "#user-email", npi: "#user-npi", password: "#user-password" }[e.field];
    if (f) $(f).focus();
  }
}

// ---- response times (administrators and auditors) -------------------------

// The report for the chosen period (the last 7, 30 or 90 days up to now)
// and service: tables from the JSON, the chart from the SVG the API draws,
// and CSV links to the same query. The chart is fetched with the session
// and shown as an <img> from a blob: URL: the Content-Security-Policy
// allows blob: images, and an SVG loaded as an image runs no script.
const report = { seq: 0, chartURL: null };

function reportQuery() {
  const to = new Date();
  const from = new Date(to.getTime() - Number($("#rt-period").value) * 86400e3);
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  if ($("#rt-service").value) q.set("service", $("#rt-service").value);
  return q;
}

async function showReports() {
  const sel = $("#rt-service");
  if (sel.options.length <= 1) {
    const d = await api("GET", "/services");
    sel.replaceChildren(el("option", { value: "" }, "All services"),
      ...d.services.map((s) => el("option", { value: s.id }, s.name)));
  }
  await loadReport();
}

// fmtSeconds says a duration the way a charge nurse would.
function fmtSeconds(s) {
  if (s === null || s === undefined) return "—";
  if (s < 10) return s.toFixed(1) + " s";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}

function reportRows(tbody, rows, empty, cols) {
  $(tbody).replaceChildren(...(rows.length ? rows.map((r) => el("tr", {}, ...cols(r).map((c, i) => el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {}, c))))
    : [el("tr", { class: "empty" }, el("td", { colspan: $(tbody).closest("table").tHead.rows[0].cells.length }, empty))]));
}

async function loadReport() {
  const seq = ++report.seq;
  const m = $("#rt-error");
  m.hidden = true;
  const q = reportQuery();
  const [data, svg] = await Promise.all([
    api("GET", "/reports/response-times?" + q),
    fetch("/api/v1/reports/response-times?" + q + "&format=svg", { credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new APIError(r.status, null);
      return r.blob();
    }),
  ]).catch((e) => { if (seq === report.seq) { m.textContent = e.message; m.hidden = false; } return [null, null]; });
  if (seq !== report.seq || !data) return;
  const range = (d) => new Date(d).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  $("#rt-range").textContent = "Pages sent from " + range(data.from) + " to " + range(data.to) + ".";
  reportRows("#rt-services tbody", data.services, "No pages in this period.", (s) => [s.service_name, s.priority, s.sent, s.acknowledged,
    s.escalated, s.unanswered, fmtSeconds(s.ack_median_seconds), fmtSeconds(s.ack_p90_seconds)]);
  for (const [tr, s] of [...$("#rt-services tbody").rows].map((tr, i) => [tr, data.services[i]])) {
    if (s) { tr.dataset.service = s.service_id || ""; tr.dataset.priority = s.priority; }
  }
  reportRows("#rt-people tbody", data.people, "Nobody was paged in this period.", (p) => [p.name, p.received, p.acknowledged, fmtSeconds(p.median_response_seconds)]);
  reportRows("#rt-gaps tbody", data.coverage_gaps, "No escalation step found its schedule empty.", (g) => [g.service_name, g.step + 1, g.pages, g.details.join("; ")]);
  const img = $("#rt-chart");
  if (report.chartURL) URL.revokeObjectURL(report.chartURL);
  report.chartURL = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  img.src = report.chartURL;
  img.hidden = false;
  for (const part of ["services", "people", "gaps"]) {
    $("#rt-csv-" + part).href = "/api/v1/reports/response-times?" + q + "&format=csv&part=" + part;
  }
}

function clearReport() {
  report.seq++;
  for (const t of ["#rt-services", "#rt-people", "#rt-gaps"]) $(t + " tbody").replaceChildren();
  $("#rt-service").replaceChildren(el("option", { value: "" }, "All services"));
  $("#rt-range").textContent = "";
  const img = $("#rt-chart");
  img.removeAttribute("src");
  img.hidden = true;
  if (report.chartURL) { URL.revokeObjectURL(report.chartURL); report.chartURL = null; }
  for (const a of document.querySelectorAll("#reports a.csv")) a.href = "#reports";
}

// ---- schedules --------------------------------------------------------

// The calendar lays each day out as a cell listing who is on call when,
// clipped to the day, and the gaps (nobody on call) in red. Week and month
// views differ only in their range. Days are the browser's days.
const cal = { view: "week", anchor: startOfDay(new Date()), schedule: null, detail: null };

function startOfDay(d) { const x = new Date(d); x.setHours(0, 0, 0, 0); return x; }
function addDays(d, n) { const x = new Date(d); x.setDate(x.getDate() + n); return x; }
function monday(d) { const x = startOfDay(d); return addDays(x, -((x.getDay() + 6) % 7)); }
function hhmm(d) { return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0"); }
function localInput(d) { return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0") + "T" + hhmm(d); }

function calRange() {
  if (cal.view === "week") { const from = monday(cal.anchor); return [from, addDays(from, 7)]; }
  const first = new Date(cal.anchor.getFullYear(), cal.anchor.getMonth(), 1);
  const next = new Date(cal.anchor.getFullYear(), cal.anchor.getMonth() + 1, 1);
  const from = monday(first);
  let to = monday(addDays(next, -1));
  to = addDays(to, 7);
  return [from, to];
}

async function showSchedules() {
  const editing = can("schedules.edit");
  $("#sched-edit").hidden = !editing;
  const d = await api("GET", "/schedules");
  const pick = $("#sched-pick");
  const keep = cal.schedule;
  pick.replaceChildren(...d.schedules.map((s) => el("option", { value: s.id }, s.name)));
  if (!d.schedules.length) pick.append(el("option", { value: "" }, "No schedules yet"));
  cal.schedule = d.schedules.some((s) => s.id === keep) ? keep : (d.schedules[0] && d.schedules[0].id) || null;
  pick.value = cal.schedule || "";
  if (editing) fillPeople();
  await Promise.all([loadOnCallByService(), loadCalendar()]);
}

function fillPeople() {
  const people = [...state.users.values()].filter((u) => u.active).sort((a, b) => a.name.localeCompare(b.name));
  for (const sel of document.querySelectorAll("select.people")) {
    const multiple = sel.multiple;
    sel.replaceChildren(...(multiple ? [] : [el("option", { value: "" }, "Choose a person")]),
      ...people.map((u) => el("option", { value: u.id }, u.name)));
  }
  overrideKindChanged();
}

// "Who is on call now" for every service: whom its policy's first step reaches.
async function loadOnCallByService() {
  const d = await api("GET", "/services");
  const items = await Promise.all(d.services.map(async (svc) => {
    let names = [];
    try { names = await firstStepNames(svc); } catch (e) { names = null; }
    return el("li", { "data-service": svc.id }, el("strong", {}, svc.name), ": ",
      names === null ? "unknown" : names.length ? names.join(", ") : el("span", { class: "warning" }, "no one on call"));
  }));
  $("#oncall-all").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No services yet.")]));
}

async function firstStepNames(svc) {
  const policy = await api("GET", "/escalation-policies/" + svc.escalation_policy_id);
  const step = policy.steps[0];
  const names = [];
  if (!step) return names;
  for (const t of step.targets) {
    if (t.user_id) names.push(userName(t.user_id));
    if (t.schedule_id) {
      const oc = await api("GET", "/schedules/" + t.schedule_id + "/on-call");
      for (const u of oc.users) names.push(u.name);
    }
  }
  return names;
}

async function loadCalendar() {
  const id = cal.schedule;
  $("#cal-week").setAttribute("aria-pressed", String(cal.view === "week"));
  $("#cal-month").setAttribute("aria-pressed", String(cal.view === "month"));
  $("#cal-zone").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!id) { $("#calendar").replaceChildren(); $("#sched-parts").replaceChildren(); return; }
  const [from, to] = calRange();
  const q = "?from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
  const [detail, shifts, gaps, now, overrides] = await Promise.all([
    api("GET", "/schedules/" + id), api("GET", "/schedules/" + id + "/shifts" + q),
    api("GET", "/schedules/" + id + "/gaps" + q), api("GET", "/schedules/" + id + "/on-call"),
    api("GET", "/schedules/" + id + "/overrides" + q)]);
  if (cal.schedule !== id) return;
  cal.detail = detail;
  const nowNames = now.users.map((u) => u.name);
  const oc = $("#sched-oncall");
  oc.textContent = nowNames.length ? "On call now: " + nowNames.join(", ") + "." : "No one is on call now.";
  oc.classList.toggle("warning", !nowNames.length);
  const fmt = { month: "long", day: "numeric" };
  $("#cal-range").textContent = cal.view === "month"
    ? cal.anchor.toLocaleDateString(undefined, { month: "long", year: "numeric" })
    : from.toLocaleDateString(undefined, fmt) + " – " + addDays(to, -1).toLocaleDateString(undefined, fmt);
  const cells = [];
  for (let day = from; day < to; day = addDays(day, 1)) {
    const end = addDays(day, 1);
    const entries = [];
    const clip = (x) => {
      const a = new Date(Math.max(new Date(x.start), day)), b = new Date(Math.min(new Date(x.end), end));
      return a < b ? [a, b] : null;
    };
    for (const sh of shifts.shifts) {
      const c = clip(sh);
      if (c) entries.push({ at: c[0], node: el("li", { class: "shift" }, hhmm(c[0]) + "–" + (c[1].getTime() === end.getTime() ? "24:00" : hhmm(c[1])) + " " + userName(sh.user_id)) });
    }
    for (const g of gaps.gaps) {
      const c = clip(g);
      if (c) entries.push({ at: c[0], node: el("li", { class: "gap" }, hhmm(c[0]) + "–" + (c[1].getTime() === end.getTime() ? "24:00" : hhmm(c[1])) + " no one on call") });
    }
    entries.sort((a, b) => a.at - b.at);
    const outside = cal.view === "month" && day.getMonth() !== cal.anchor.getMonth();
    const today = day.getTime() === startOfDay(new Date()).getTime();
    cells.push(el("div", { class: "day" + (outside ? " outside" : "") + (today ? " today" : ""), "data-day": localInput(day).slice(0, 10) },
      el("div", { class: "day-head" }, day.toLocaleDateString(undefined, { weekday: "short", day: "numeric" })),
      el("ul", {}, ...entries.map((e) => e.node))));
  }
  const grid = $("#calendar");
  grid.className = "calendar " + cal.view;
  grid.replaceChildren(...cells);
  renderParts(detail, overrides.overrides || []);
}

// renderParts lists the schedule's rotations, rules and overrides (in view)
// with a remove button each; editing is remove and add again.
function renderParts(detail, overrides) {
  if (!can("schedules.edit")) return;
  const id = detail.id;
  const items = [];
  const rotName = (rid) => { const r = detail.rotations.find((x) => x.id === rid); return r ? (r.name || "rotation") : "rotation"; };
  const remove = (what, path) => el("button", { type: "button", on: { click: () => removePart(path) } }, "Remove " + what);
  for (const r of detail.rotations) {
    items.push(el("li", {}, "Rotation " + (r.name || "") + ": " + r.participants.map(userName).join(" → ") +
      ", " + r.shift_length + " " + r.shift_unit + " each, from " + new Date(r.start).toLocaleString(), " ",
      remove("rotation", "/schedules/" + id + "/rotations/" + r.id)));
  }
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  for (const r of detail.rules) {
    const who = r.rotation_id ? rotName(r.rotation_id) : userName(r.user_id);
    const win = r.windows.map((w) => ((w.weekdays && w.weekdays.length) ? w.weekdays.map((d) => days[d]).join(" ") : "every day") + " " + w.start + "–" + w.end).join("; ");
    items.push(el("li", {}, "Rule: " + who + ", " + win, " ", remove("rule", "/schedules/" + id + "/rules/" + r.id)));
  }
  for (const o of overrides) {
    const text = o.kind === "add" ? userName(o.add_user_id) + " added" : o.kind === "remove" ? userName(o.remove_user_id) + " off"
      : userName(o.add_user_id) + " replaces " + userName(o.remove_user_id);
    items.push(el("li", { class: "override" }, "Override: " + text + ", " + new Date(o.start).toLocaleString() + " – " + new Date(o.end).toLocaleString(), " ",
      remove("override", "/schedules/" + id + "/overrides/" + o.id)));
  }
  $("#sched-parts").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "Nothing yet.")]));
  const who = $("#rule-who");
  who.replaceChildren(el("option", { value: "" }, "Choose"),
    ...detail.rotations.map((r) => el("option", { value: "rotation:" + r.id }, "Rotation " + (r.name || ""))),
    ...[...state.users.values()].filter((u) => u.active).map((u) => el("option", { value: "user:" + u.id }, u.name)));
}

async function removePart(path) {
  try { await api("DELETE", path); } catch (e) { schedError(e); }
  await loadCalendar();
}

function schedError(e) {
  const m = $("#sched-error");
  m.textContent = e ? e.message : "";
  m.hidden = !e;
}

function overrideKindChanged() {
  const k = $("#ov-kind").value;
  const showAdd = k !== "remove", showRemove = k !== "add";
  $("#ov-add").hidden = !showAdd; $("label[for=ov-add]").hidden = !showAdd;
  $("#ov-remove").hidden = !showRemove; $("label[for=ov-remove]").hidden = !showRemove;
}

async function saveSchedulePart(ev, path, body) {
  ev.preventDefault();
  schedError(null);
  try {
    await api("POST", path, body());
    ev.target.reset();
    overrideKindChanged();
    await Promise.all([loadCalendar(), loadOnCallByService()]);
    notice("Saved.");
  } catch (e) { schedError(e); }
}

function isoFromLocal(v) { return v ? new Date(v).toISOString() : ""; }

function moveCalendar(step) {
  if (cal.view === "week") cal.anchor = addDays(cal.anchor, 7 * step);
  else cal.anchor = new Date(cal.anchor.getFullYear(), cal.anchor.getMonth() + step, 1);
  loadCalendar().catch(fail);
}

function setupSchedules() {
  $("#sched-pick").addEventListener("change", () => { cal.schedule = $("#sched-pick").value; hideFeed(); loadCalendar().catch(fail); });
  $("#cal-week").addEventListener("click", () => { cal.view = "week"; loadCalendar().catch(fail); });
  $("#cal-month").addEventListener("click", () => { cal.view = "month"; loadCalendar().catch(fail); });
  $("#cal-prev").addEventListener("click", () => moveCalendar(-1));
  $("#cal-next").addEventListener("click", () => moveCalendar(1));
  $("#cal-today").addEventListener("click", () => { cal.anchor = startOfDay(new Date()); loadCalendar().catch(fail); });
  $("#ov-kind").addEventListener("change", overrideKindChanged);
  $("#override-form").addEventListener("submit", (ev) => saveSchedulePart(ev, "/schedules/" + cal.schedule + "/overrides", () => {
    const kind = $("#ov-kind").value;
    const b = { kind, start: isoFromLocal($("#ov-start").value), end: isoFromLocal($("#ov-end").value) };
    if (kind !== "remove") b.add_user_id = $("#ov-add").value || undefined;
    if (kind !== "add") b.remove_user_id = $("#ov-remove").value || undefined;
    return b;
  }));
  $("#rotation-form").addEventListener("submit", (ev) => saveSchedulePart(ev, "/schedules/" + cal.schedule + "/rotations", () => ({
    name: $("#rot-name").value.trim(),
    participants: [...$("#rot-people").selectedOptions].map((o) => o.value),
    shift_length: Number($("#rot-length").value), shift_unit: $("#rot-unit").value,
    start: isoFromLocal($("#rot-start").value),
  })));
  $("#rule-form").addEventListener("submit", (ev) => saveSchedulePart(ev, "/schedules/" + cal.schedule + "/rules", () => {
    const [kind, id] = $("#rule-who").value.split(":");
    const b = { windows: [{ start: $("#rule-start").value, end: $("#rule-end").value,
      weekdays: [...document.querySelectorAll("#rule-form .weekdays input:checked")].map((c) => Number(c.value)) }] };
    if (kind === "rotation") b.rotation_id = id; else if (kind === "user") b.user_id = id;
    return b;
  }));
  $("#schedule-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    schedError(null);
    try {
      const s = await api("POST", "/schedules", { name: $("#new-sched-name").value.trim(), time_zone: $("#new-sched-zone").value.trim() });
      cal.schedule = s.id;
      ev.target.reset();
      await showSchedules();
    } catch (e) { schedError(e); }
  });
  $("#feed-create").addEventListener("click", async () => {
    try {
      const f = await api("POST", "/schedules/" + cal.schedule + "/feeds");
      $("#feed-url").value = f.url;
      $("#feed-url").hidden = false; $("label[for=feed-url]").hidden = false; $("#feed-copy").hidden = false;
      $("#feed-url").select();
    } catch (e) { fail(e); }
  });
  $("#feed-copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("#feed-url").value); notice("Link copied."); }
    catch (_) { $("#feed-url").select(); notice("Press Ctrl+C to copy the selected link."); }
  });
}

function hideFeed() {
  $("#feed-url").value = "";
  $("#feed-url").hidden = true; $("label[for=feed-url]").hidden = true; $("#feed-copy").hidden = true;
}

// ---- start --------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-password").addEventListener("submit", signInPassword);
  $("#signin-second").addEventListener("submit", signInSecondStep);
  $("#signin-restart").addEventListener("click", restartSignIn);
  $("#mfa-form").addEventListener("submit", confirmEnrolment);
  $("#mfa-continue").addEventListener("click", () => { $("#mfa-recovery").replaceChildren(); loadMe(); });
  $("#signout").addEventListener("click", signOut);
  $("#page-form").addEventListener("submit", sendPage);
  $("#reply-form").addEventListener("submit", sendReply);
  $("#nt-open").addEventListener("click", () => toggleNewThread($("#nt-form").hidden));
  $("#nt-cancel").addEventListener("click", () => { toggleNewThread(false); $("#nt-open").focus(); });
  $("#nt-form").addEventListener("submit", (ev) => startThread(ev).catch(fail));
  for (const r of document.querySelectorAll("input[name=nt-kind]")) r.addEventListener("change", newThreadKindChanged);
  $("#nt-filter").addEventListener("input", filterMembers);
  // Changing what was asked for clears the refusal (searching does not).
  $("#nt-form").addEventListener("input", (ev) => { if (ev.target.id !== "nt-filter") newThreadError(null); });
  setupSchedules();
  $("#rt-period").addEventListener("change", () => loadReport().catch(fail));
  $("#rt-service").addEventListener("change", () => loadReport().catch(fail));
  $("#chart-new-thread").addEventListener("click", startChartThread);
  $("#user-form").addEventListener("submit", saveUser);
  $("#policy-form").addEventListener("submit", savePolicy);
  for (const r of document.querySelectorAll("input[name=target]")) r.addEventListener("change", targetChanged);
  $("#page-service").addEventListener("change", () => showOnCall().catch(fail));
  $("#page-person").addEventListener("change", () => showOnCall().catch(fail));
  window.addEventListener("hashchange", route);
  for (const ev of ["keydown", "pointerdown", "input"]) document.addEventListener(ev, resetIdle, { passive: true });
  // After an EHR launch the server names the chart's patient in the page.
  const chart = document.querySelector("meta[name=callroom-chart-patient]");
  if (chart && chart.content) {
    sessionStorage.setItem("chart_patient", chart.content);
    history.replaceState(null, "", "/#chart");
  }
  const m = location.pathname.match(/^\/pages\/([0-9a-f-]{36})$/);
  if (m) {
    history.replaceState(null, "", "/#console");
    state.openPage = m[1];
  }
  loadMe().then(() => { if (state.me && state.openPage) watchPage(state.openPage); });
});
