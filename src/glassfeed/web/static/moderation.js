// glassfeed moderation pages: the moderator console (/moderation) and a person's statements of reasons
// (/statements). Vanilla JS, no build step. Every piece of data is written with textContent (never innerHTML).
// The moderator key lives in sessionStorage only and is sent as "Authorization: Bearer"; a person's calls go
// through the same-origin /web/api/statements proxy (the server adds their session's credential).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const KEY_SLOT = "glassfeed.moderatorKey";

// ---------------------------------------------------------------- small helpers
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid);
  return el;
}

function say(el, msg, bad = false) {
  if (typeof el === "string") el = $(el);
  if (el) { el.textContent = msg; el.classList.toggle("bad", bad); }
}

class ApiError extends Error {
  constructor(status, message, detail) { super(message); this.status = status; this.detail = detail || []; }
}

async function call(path, init) {
  const r = await fetch(path, init);
  const ct = r.headers.get("content-type") || "";
  const data = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = (data && data.error) || `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, msg, data && data.detail);
  }
  return data;
}

function errorText(e) {
  if (!(e instanceof ApiError)) return String(e.message || e);
  const parts = (e.detail || []).map((d) => (d.index > 0 ? `decision ${d.index + 1}: ` : "") + `${d.field}: ${d.reason}`);
  const head = e.status === 403 ? "Refused (403)" : e.status === 401 ? "Not signed in (401)" : `Error ${e.status}`;
  const body = parts.length ? parts.join("; ") : e.message;
  return `${head}: ${body}`;
}

// A field's value as text: strings as they are, an object (an automated rule's facts) as "name value" pairs.
function plain(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${words(k)} ${typeof x === "number" ? +x.toPrecision(3) : x}`).join(", ");
  return String(v);
}
const iso = (ts) => (ts === null || ts === undefined ? "–" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19));
const fmt = (x, d = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
const words = (s) => String(s).replaceAll("_", " ");
const SOURCES = {
  SOURCE_ARTICLE_16: "a notice of illegal content (DSA Art. 16)",
  SOURCE_TRUSTED_FLAGGER: "a trusted flagger's notice",
  SOURCE_TYPE_OTHER_NOTIFICATION: "reports by people",
  SOURCE_VOLUNTARY: "the platform's own initiative",
};
const TDB = (code) => words(String(code || "").replace(/^(DECISION_GROUND|SOURCE|AUTOMATED_DECISION|DECISION_VISIBILITY|CONTENT_TYPE)_/, "")).toLowerCase();

function dl(rows) {
  return h("dl", { class: "facts" }, rows.filter(Boolean).flatMap(([label, value, field]) =>
    [h("dt", { text: label }), h("dd", { "data-field": field || null }, value === null || value === undefined || value === "" ? "–" : value)]));
}

// ---------------------------------------------------------------- a statement of reasons
function sorView(s) {
  const what = s.action === "downrank" ? `${s.action_words} (×${fmt(s.factor)})` : s.action_words;
  const illegal = s.decision_ground === "DECISION_GROUND_ILLEGAL_CONTENT";
  const groundText = illegal ? s.illegal_content_legal_ground : s.incompatible_content_ground;
  const explanation = plain(illegal ? s.illegal_content_explanation : s.incompatible_content_explanation);
  const automated = s.automated_decision === "AUTOMATED_DECISION_FULLY";
  const r = s.redress || {};
  const appeals = s.appeals || [];
  const subject = s.subject ? `${s.subject.type} ${s.subject.id}` : "–";
  return h("article", { class: "sor card", "data-statement": String(s.id), "aria-labelledby": `sor-title-${s.id}` },
    h("h3", { id: `sor-title-${s.id}`, text: `Statement of reasons #${s.id}: ${subject} ${s.action_words}` }),
    s.reversed ? h("p", { class: "badge ok", "data-reversed": "true", text: "Reversed on appeal: the restriction is lifted." }) : null,
    dl([
      ["Subject", subject, "subject"],
      ["Author", s.author, "author"],
      ["Action", what, "action"],
      ["Surfaces", (s.surfaces || []).join(", "), "surfaces"],
      ["Ground", illegal ? "illegal content" : "incompatible with the terms", "ground"],
      [illegal ? "Legal ground" : "Clause of the terms", plain(groundText), "ground-text"],
      explanation && explanation !== s.decision_facts ? ["Explanation", explanation, "explanation"] : null,
      ["Category", `${s.category_label} (${s.category})`, "category"],
      ["Facts relied on", plain(s.decision_facts), "facts"],
      ["Decided by", s.decided_by, "decided-by"],
      ["Automated decision", automated ? "yes: an automated rule decided" : "no: a person decided", "automated"],
      ["Automated detection", s.automated_detection ? "yes" : "no", "detection"],
      ["Source", SOURCES[s.source_type] || TDB(s.source_type), "source"],
      ["Territorial scope", (s.territorial_scope || []).join(", "), "scope"],
      ["Applied", s.application_date, "applied"],
      s.content_date ? ["Content posted", s.content_date, "content-date"] : null,
      ["Appeal until", r.appeal_deadline, "appeal-deadline"],
      ["How to contest", h("ul", { class: "redress" },
        h("li", { text: `Internal complaint: ${r.internal_complaint || "–"}` }),
        h("li", { text: `Out-of-court settlement: ${r.out_of_court_settlement || "–"}` }),
        h("li", { text: `Courts: ${r.judicial_redress || "–"}` })), "redress"],
      ["Appeals", appeals.length ? h("ul", { class: "appeals" }, appeals.map(appealLine)) : "none", "appeals"],
    ]));
}

function appealLine(a) {
  const done = a.status === "open" ? "open: waiting for a moderator" : `${a.status}${a.explanation ? ": " + a.explanation : ""}`;
  return h("li", { "data-appeal": String(a.id), "data-status": a.status },
    h("strong", { text: `Appeal #${a.id}` }), ` by the ${a.by}, filed ${a.filed_at}: `,
    h("span", { class: "appeal-status", text: done }),
    h("q", { class: "appeal-text", text: a.text }));
}

// ---------------------------------------------------------------- the moderator console
const mod = { key: null, me: null, vocab: null, cases: [], selected: new Map(), logSince: 0 };

function moderatorKey() {
  try { return sessionStorage.getItem(KEY_SLOT); } catch { return null; }
}

async function modApi(path, opts = {}) {
  const key = moderatorKey();
  if (!key) throw new ApiError(401, "paste your moderator key first");
  const init = { method: opts.method || "GET", headers: { Authorization: `Bearer ${key}` }, credentials: "omit", cache: "no-store" };
  if (opts.body !== undefined) { init.body = JSON.stringify(opts.body); init.headers["Content-Type"] = "application/json"; }
  return call(path, init);
}

function keyState() {
  const has = Boolean(moderatorKey());
  $("#key-forget").hidden = !has;
  document.body.dataset.keyed = String(has);
}

async function useKey(e) {
  e.preventDefault();
  const v = $("#mod-key").value.trim();
  if (!v) return;
  try { sessionStorage.setItem(KEY_SLOT, v); } catch { say("#key-status", "This browser refuses sessionStorage: the console cannot keep your key.", true); return; }
  $("#mod-key").value = "";
  keyState();
  await loadQueue();
}

function forgetKey() {
  try { sessionStorage.removeItem(KEY_SLOT); } catch { /* nothing kept */ }
  mod.me = null; mod.cases = []; mod.selected.clear();
  $("#queue-list").replaceChildren(); $("#appeals-list").replaceChildren(); $("#log-table tbody").replaceChildren();
  renderSelection(); keyState();
  say("#key-status", "Key forgotten. Paste a moderator key to go on.");
}

function keyRefused(e) {
  if (e instanceof ApiError && (e.status === 401 || e.status === 403) && !mod.me) {
    try { sessionStorage.removeItem(KEY_SLOT); } catch { /* nothing kept */ }
    keyState();
    say("#key-status", `That key was refused: ${e.message}. Paste a moderator key.`, true);
    return true;
  }
  return false;
}

function signedAs(name) {
  mod.me = name;
  document.body.dataset.moderator = name;
  say("#key-status", `Using the key of moderator “${name}” (kept in this tab only).`);
}

async function loadVocab() {
  if (mod.vocab) return mod.vocab;
  mod.vocab = await call("/v1/moderation/categories", { cache: "no-store" });
  const v = mod.vocab;
  $("#d-action").replaceChildren(...v.actions.map((a) => h("option", { value: a.key, text: `${a.key} — ${a.words}` })));
  $("#d-action").value = "drop";
  $("#d-surfaces").replaceChildren(...v.surfaces.map((s) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "surfaces", value: s, checked: true }), ` ${s}`)));
  $("#d-grounds").replaceChildren(...v.grounds.map((g, i) => h("label", { class: "check" },
    h("input", { type: "radio", name: "ground", value: g.key, checked: i === v.grounds.length - 1, onchange: fillCategories }), ` ${g.label}`)));
  fillCategories();
  onActionChange();
  return v;
}

function chosenGround() { const r = document.querySelector("#d-grounds input:checked"); return r ? r.value : null; }

function fillCategories() {
  const sel = $("#d-category");
  const keep = sel.value;
  const illegal = chosenGround() === "illegal";
  const cats = mod.vocab.categories.filter((c) => !illegal || c.illegal);
  sel.replaceChildren(...cats.map((c) => h("option", { value: c.key, text: `${c.label}${c.illegal ? " · illegal" : ""}` })));
  if (cats.some((c) => c.key === keep)) sel.value = keep;
}

// Preselect the category the case was reported under (the first one the chosen ground allows).
function suggestCategory(c) {
  const sel = $("#d-category");
  const offered = new Set([...sel.options].map((o) => o.value));
  const fit = (c.categories || []).find((k) => offered.has(k));
  if (fit) sel.value = fit;
}

function onActionChange() { $("#d-factor-box").hidden = $("#d-action").value !== "downrank"; }

function subjectKey(c) { return `${c.subject.type}:${c.subject.id}`; }

async function loadQueue() {
  const list = $("#queue-list");
  list.setAttribute("aria-busy", "true");
  say("#queue-status", "Loading the queue…");
  try {
    await loadVocab();
    const q = await modApi("/v1/moderation/queue");
    signedAs(q.moderator);
    mod.cases = q.cases;
    const live = new Set(q.cases.map(subjectKey));
    for (const k of [...mod.selected.keys()]) if (!live.has(k)) mod.selected.delete(k);
    list.replaceChildren(...q.cases.map(caseCard));
    if (!q.cases.length) list.append(h("p", { class: "empty", text: "No open cases. The queue is empty." }));
    say("#queue-status", `${q.cases.length} open ${q.cases.length === 1 ? "case" : "cases"}, trusted flaggers first, then by priority (severity × expected reach).`);
    renderSelection();
  } catch (e) {
    if (!keyRefused(e)) say("#queue-status", "Could not load the queue: " + errorText(e), true);
  } finally { list.setAttribute("aria-busy", "false"); }
}

function caseCard(c) {
  const k = subjectKey(c);
  const id = `case-${c.subject.type}-${c.subject.id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const scores = Object.entries(c.scores || {}).map(([n, v]) => `${n} ${fmt(v, 3)}`).join(", ") || "not scored";
  const vis = Object.entries(c.visibility || {});
  const visTable = vis.length
    ? h("table", { class: "tbl vis" }, h("caption", { text: "Visibility now, per surface" }),
        h("thead", {}, h("tr", {}, ["surface", "action", "factor", "why"].map((x) => h("th", { scope: "col", text: x })))),
        h("tbody", {}, vis.map(([s, o]) => h("tr", { "data-surface": s, "data-action": o.action },
          h("td", { text: s }), h("td", { text: o.action }), h("td", { text: fmt(o.factor) }),
          h("td", { text: (o.reasons || []).map((r) => (r.rule ? `rule ${r.rule}: ` : "") + r.reason).join("; ") })))))
    : h("p", { class: "meta", text: "Visibility now: shown everywhere as usual (no rule or decision applies)." });
  return h("article", { class: "case card", id, "data-subject": c.subject.id, "data-subject-type": c.subject.type, "aria-labelledby": id + "-t" },
    h("header", { class: "case-head" },
      h("input", { type: "checkbox", class: "pick", id: id + "-pick", checked: mod.selected.has(k),
                   onchange: (e) => { if (e.target.checked) mod.selected.set(k, c); else mod.selected.delete(k); renderSelection(); } }),
      h("label", { for: id + "-pick", class: "sr-only", text: `Select ${c.subject.type} ${c.subject.id} for a bulk decision` }),
      h("h3", { id: id + "-t", text: `${c.subject.type === "post" ? "Post" : "Account"} ${c.subject.id}` }),
      h("span", { class: "meta", text: ` by ${c.author}` }),
      c.trusted_flagger ? h("span", { class: "badge warn", "data-trusted": "true", text: "trusted flagger" }) : null),
    c.text !== null && c.text !== undefined ? h("blockquote", { class: "post-text", text: c.text }) : null,
    dl([
      ["Categories", c.categories.map(words).join(", "), "categories"],
      ["Classifier scores", scores, "scores"],
      ["Severity", fmt(c.severity), "severity"],
      ["Expected reach", fmt(c.expected_reach, 1), "reach"],
      ["Priority", fmt(c.priority, 2), "priority"],
      ["Trusted flagger", c.trusted_flagger ? "yes" : "no", "trusted"],
      ["Opened", iso(c.opened_at) + " UTC", "opened"],
    ]),
    visTable,
    h("h4", { text: `${c.cases.length} ${c.cases.length === 1 ? "case" : "cases"}` }),
    h("ul", { class: "case-items" }, c.cases.map(caseItem)),
    h("div", { class: "row" },
      h("button", { type: "button", class: "decide-one", "aria-label": `Decide ${c.subject.type} ${c.subject.id}`,
                    onclick: () => { mod.selected.clear(); mod.selected.set(k, c); syncPicks(); renderSelection(); suggestCategory(c); $("#d-action").focus(); } }, "Decide…")));
}

function caseItem(x) {
  const who = x.kind === "report" ? `report by ${x.reporter}` : x.kind === "notice" ? `notice by ${x.notifier}${x.trusted ? " (trusted flagger)" : ""}`
    : `automated rule ${x.rule}`;
  const said = x.kind === "report" ? x.text : x.kind === "notice" ? x.explanation : x.reason;
  return h("li", { "data-case": String(x.id), "data-kind": x.kind },
    h("strong", { text: `#${x.id}` }), ` ${who} · ${words(x.category)} · ${iso(x.at)}`,
    said ? h("q", { text: said }) : null);
}

function syncPicks() {
  for (const box of document.querySelectorAll("#queue-list .case")) {
    const k = `${box.dataset.subjectType}:${box.dataset.subject}`;
    $(".pick", box).checked = mod.selected.has(k);
  }
}

function renderSelection() {
  const n = mod.selected.size;
  const names = [...mod.selected.values()].map((c) => `${c.subject.type} ${c.subject.id}`);
  say("#decide-subjects", n ? `Deciding ${n === 1 ? "" : n + " subjects: "}${names.join(", ")}` : "Select one or more cases (“Decide” on a case, or tick several for a bulk decision).");
  $("#decide-title").textContent = n > 1 ? `Decide ${n} subjects at once` : "Decide";
  $("#decide-submit").disabled = n === 0;
  $("#decide-submit").textContent = n > 1 ? `Decide all ${n}` : "Decide";
  for (const box of document.querySelectorAll("#queue-list .case")) {
    box.classList.toggle("selected", mod.selected.has(`${box.dataset.subjectType}:${box.dataset.subject}`));
  }
}

async function decide(e) {
  e.preventDefault();
  $("#decide-errors").replaceChildren();
  if (!mod.selected.size) return;
  const action = $("#d-action").value;
  const surfaces = [...document.querySelectorAll("#d-surfaces input:checked")].map((x) => x.value);
  const common = { action, surfaces, ground: chosenGround(), category: $("#d-category").value,
                   grounds_explanation: $("#d-grounds-explanation").value, facts: $("#d-facts").value };
  if (action === "downrank") common.factor = Number($("#d-factor").value);
  const decisions = [...mod.selected.values()].map((c) => ({ [c.subject.type === "post" ? "post" : "account"]: c.subject.id, ...common }));
  say("#decide-status", "Deciding…");
  $("#decide-submit").disabled = true;
  try {
    const r = await modApi("/v1/moderation/decisions", { method: "POST", body: { decisions } });
    say("#decide-status", `Decided: ${r.statements.length} statement${r.statements.length === 1 ? "" : "s"} of reasons issued.`);
    $("#result-list").replaceChildren(...r.statements.map(sorView));
    $("#decision-result").hidden = false;
    mod.selected.clear();
    $("#d-grounds-explanation").value = ""; $("#d-facts").value = "";
    await loadQueue();
    $("#result-title").scrollIntoView({ block: "start" });
  } catch (err) {
    say("#decide-status", "Not decided (nothing was written).", true);
    $("#decide-errors").append(h("p", { class: "error", text: errorText(err) }));
    renderSelection();
  }
}

// ---------------------------------------------------------------- appeals (console)
async function loadAppeals() {
  say("#appeals-status", "Loading appeals…");
  try {
    const r = await modApi("/v1/moderation/appeals");
    signedAs(r.moderator);
    $("#appeals-list").replaceChildren(...r.appeals.map(appealCard));
    if (!r.appeals.length) $("#appeals-list").append(h("p", { class: "empty", text: "No open appeals." }));
    say("#appeals-status", `${r.appeals.length} open ${r.appeals.length === 1 ? "appeal" : "appeals"}, oldest first.`);
  } catch (e) {
    if (!keyRefused(e)) say("#appeals-status", "Could not load the appeals: " + errorText(e), true);
  }
}

function appealCard(a) {
  const id = `appeal-${a.id}`;
  const s = a.statement || {};
  const status = h("p", { class: "status", role: "status" });
  const errors = h("div", { role: "alert", class: "appeal-errors" });
  const form = h("form", { class: "appeal-decide", "aria-label": `Decide appeal ${a.id}` },
    h("fieldset", {}, h("legend", { text: "Outcome" }),
      h("label", { class: "check" }, h("input", { type: "radio", name: `outcome-${a.id}`, value: "upheld", required: true }), " Uphold the decision"),
      h("label", { class: "check" }, h("input", { type: "radio", name: `outcome-${a.id}`, value: "reversed" }), " Reverse it (restore the post's reach)")),
    h("label", { for: id + "-why", text: "Explanation (sent to whoever appealed)" }),
    h("textarea", { id: id + "-why", name: "explanation", rows: "2", required: true }),
    h("button", { type: "submit", text: "Decide appeal" }),
    status, errors);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    const outcome = (form.querySelector(`input[name="outcome-${a.id}"]:checked`) || {}).value;
    if (!outcome) { errors.append(h("p", { class: "error", text: "Choose an outcome: uphold or reverse." })); return; }
    say(status, "Sending…");
    try {
      const r = await modApi(`/v1/moderation/appeals/${encodeURIComponent(a.id)}/decision`,
        { method: "POST", body: { outcome, explanation: $(`#${id}-why`, form).value } });
      say(status, `Appeal #${r.id} ${r.status}.`);
      const card = form.closest(".appeal");
      card.dataset.status = r.status;
      card.classList.add("done");
      form.querySelector("button[type=submit]").disabled = true;
      card.append(h("p", { class: "badge ok", "data-decided": r.status, text: `Decided: ${r.status}${r.explanation ? " — " + r.explanation : ""} (${r.decided_at})` }));
    } catch (err) {
      say(status, "Not decided.", true);
      const own = err instanceof ApiError && err.status === 403;
      errors.append(h("p", { class: "error", "data-refused": own ? "true" : null,
        text: errorText(err) + (own ? `. You (${mod.me}) made this decision: another moderator must decide the appeal.` : "") }));
    }
  });
  return h("article", { class: "appeal card", id, "data-appeal": String(a.id), "data-statement": String(s.id), "data-status": a.status,
                        "aria-labelledby": id + "-t" },
    h("h3", { id: id + "-t", text: `Appeal #${a.id} against statement #${s.id} (${s.subject ? s.subject.type + " " + s.subject.id : ""} ${s.action_words || ""})` }),
    h("p", { class: "meta", text: `By the ${a.by}, filed ${a.filed_at}. Decision by ${s.decided_by || "–"}.` }),
    h("blockquote", { class: "appeal-text", text: a.text }),
    a.you_may_decide ? null : h("p", { class: "badge warn", "data-own": "true",
      text: "You made this decision: another moderator must decide this appeal (the server refuses yours)." }),
    form,
    h("details", {}, h("summary", { text: "The statement of reasons appealed" }), sorView(s)));
}

// ---------------------------------------------------------------- the audit log
async function loadLog(reset) {
  const body = $("#log-table tbody");
  if (reset) { mod.logSince = 0; body.replaceChildren(); }
  say("#log-status", "Loading…");
  try {
    const r = await modApi(`/v1/moderation/log?since=${mod.logSince}&limit=200`);
    for (const x of r.records) {
      body.append(h("tr", { "data-seq": String(x.seq), "data-kind": x.kind },
        h("td", { text: String(x.seq) }), h("td", { text: x.at }), h("td", { text: words(x.kind) }),
        h("td", { text: x.subject ? `${x.subject.type} ${x.subject.id}` : "" }), h("td", { text: x.actor || "" }),
        h("td", { text: x.ref === null || x.ref === undefined ? "" : `#${x.ref}` }),
        h("td", {}, h("code", { class: "log-body", text: JSON.stringify(x.body) }))));
      mod.logSince = Math.max(mod.logSince, x.seq);
    }
    say("#log-status", `${body.children.length} records shown${r.records.length ? "" : "; nothing newer"}.`);
  } catch (e) {
    if (!keyRefused(e)) say("#log-status", "Could not load the log: " + errorText(e), true);
  }
}

// ---------------------------------------------------------------- tabs
function wireTabs(onSelect) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on)); t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    onSelect(tab.id);
  };
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (d) { const n = tabs[(i + d + tabs.length) % tabs.length]; n.focus(); select(n); }
    });
  });
}

function startConsole() {
  $("#key-form").addEventListener("submit", useKey);
  $("#key-forget").addEventListener("click", forgetKey);
  $("#queue-refresh").addEventListener("click", loadQueue);
  $("#appeals-refresh").addEventListener("click", loadAppeals);
  $("#log-refresh").addEventListener("click", () => loadLog(true));
  $("#log-more").addEventListener("click", () => loadLog(false));
  $("#decide-form").addEventListener("submit", decide);
  $("#d-action").addEventListener("change", onActionChange);
  $("#decide-clear").addEventListener("click", () => { mod.selected.clear(); syncPicks(); renderSelection(); });
  wireTabs((id) => {
    if (!moderatorKey()) return;
    if (id === "tab-appeals") loadAppeals();
    else if (id === "tab-log") loadLog(true);
    else loadQueue();
  });
  keyState();
  loadVocab().catch((e) => say("#decide-status", "Could not load the policy's categories: " + errorText(e), true));
  if (moderatorKey()) loadQueue();
}

// ---------------------------------------------------------------- a person's statements of reasons
const WEB = { "X-Glassfeed-Web": "1" };

async function webApi(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: { ...WEB }, credentials: "same-origin", cache: "no-store" };
  if (opts.body !== undefined) { init.body = JSON.stringify(opts.body); init.headers["Content-Type"] = "application/json"; }
  return call(path, init);
}

async function loadStatements(note) {
  const list = $("#statements-list");
  list.setAttribute("aria-busy", "true");
  try {
    const r = await webApi("/web/api/statements");
    list.replaceChildren(...r.statements.map(statementCard));
    if (!r.statements.length) list.append(h("p", { class: "empty", text: "No decisions about your posts or account." }));
    say("#statements-status", note || `${r.statements.length} statement${r.statements.length === 1 ? "" : "s"} of reasons, newest first.`);
  } catch (e) {
    say("#statements-status", "Could not load your statements: " + errorText(e), true);
  } finally { list.setAttribute("aria-busy", "false"); }
}

function statementCard(s) {
  const card = sorView(s);
  const appeals = s.appeals || [];
  const open = appeals.find((a) => a.status === "open");
  const last = appeals[appeals.length - 1];
  const deadline = Date.parse((s.redress || {}).appeal_deadline || "");
  const closed = Number.isFinite(deadline) && Date.now() > deadline;
  card.dataset.appealStatus = last ? last.status : "none";
  const line = open ? `Your appeal #${open.id} is open: another moderator will decide it.`
    : last ? `Your appeal #${last.id} was decided: ${last.status}.`
    : closed ? "The appeal window has closed." : `You can appeal until ${(s.redress || {}).appeal_deadline}.`;
  card.append(h("p", { class: "appeal-state", tabindex: "-1", "data-appeal-state": last ? last.status : "none", text: line }));
  if (open || s.reversed || closed) return card;
  const id = `appeal-text-${s.id}`;
  const status = h("p", { class: "status", role: "status" });
  const form = h("form", { class: "appeal-form", "aria-label": `Appeal statement ${s.id}` },
    h("label", { for: id, text: "Why should this decision be changed?" }),
    h("textarea", { id, name: "text", rows: "3", required: true, maxlength: "5000" }),
    h("button", { type: "submit", text: "Appeal" }), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $(`#${id}`, form).value.trim();
    if (!text) { say(status, "Write why the decision is wrong first.", true); return; }
    say(status, "Sending your appeal…");
    try {
      const a = await webApi(`/web/api/statements/${encodeURIComponent(s.id)}/appeals`, { method: "POST", body: { text } });
      await loadStatements(`Appeal #${a.id} filed: ${a.status}. Another moderator will decide it.`);
      const again = document.querySelector(`.sor[data-statement="${CSS.escape(String(s.id))}"] .appeal-state`);
      if (again) again.focus();
    } catch (err) { say(status, "Not sent: " + errorText(err), true); }
  });
  card.append(form);
  return card;
}

function startStatements() {
  $("#token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await webApi("/web/session", { method: "POST", body: { user: $("#token-user").value.trim(), token: $("#token-value").value.trim() } });
      location.href = "/statements";
    } catch (err) { say("#token-status", errorText(err), true); }
  });
  const so = $("#sign-out");
  if (so) so.addEventListener("click", async () => { await webApi("/web/session", { method: "DELETE" }); location.href = "/statements"; });
  if (document.body.dataset.user) loadStatements();
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "console") startConsole();
  else if (document.body.dataset.page === "statements") startStatements();
});
