// glassfeed web page: feed, why-panels, controls, your data, statements. Vanilla JS, no build step.
// Per-person calls go through the same-origin proxy /web/api/me/* (the server adds the credential).
"use strict";

const $ = (sel) => document.querySelector(sel);
const ME = "/web/api/me/";
const state = { policy: null, cursor: null, loading: false, done: false, clock: null, loadedAt: 0,
                prefs: null, dirty: new Set(), muted: [], session: 0 };
window.gfTimings = {};

// ---------------------------------------------------------------- small helpers
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "style") Object.assign(el.style, v); // CSSOM: allowed by the CSP (no inline style attributes)
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: { "X-Glassfeed-Web": "1" }, credentials: "same-origin" };
  if (opts.body !== undefined) { init.body = JSON.stringify(opts.body); init.headers["Content-Type"] = "application/json"; }
  const r = await fetch(path, init);
  const ct = r.headers.get("content-type") || "";
  const data = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

function say(id, msg, bad = false) { const el = $(id); if (el) { el.textContent = msg; el.classList.toggle("bad", bad); } }
const fmt = (x, d = 2) => (x === null || x === undefined) ? "–" : Number(x).toFixed(d);
const plural = (n, one, many) => `${n} ${n === 1 ? one : (many || one + "s")}`;
const prob = (p) => p >= 0.001 || p === 0 ? p.toFixed(3) : p.toExponential(1);
const signed = (x, d = 2) => (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(d);
// The feed's clock: the page's generated_at plus the real time since (the demo store may run on data time).
const now = () => state.clock === null ? Date.now() / 1000 : state.clock + (Date.now() - state.loadedAt) / 1000;
// notifications.js stamps its notification_open events with the same clock (null until the first feed page).
window.gfNow = () => (state.clock === null ? null : now());

function ago(ts) {
  const s = Math.max(0, now() - ts);
  if (s < 60) return "now";
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// ---------------------------------------------------------------- feed
async function loadFeed(reset) {
  if (reset) {
    state.session += 1; state.cursor = null; state.done = false; state.loading = false;
    $("#feed-list").replaceChildren(); $("#caught-up").hidden = true; $("#more").hidden = false;
  }
  if (state.loading || state.done) return;
  state.loading = true;
  const mine = state.session;
  $("#feed-list").setAttribute("aria-busy", "true");
  const q = new URLSearchParams({ limit: "20" });
  if (state.cursor) q.set("cursor", state.cursor);
  try {
    const page = await api(ME + "feed?" + q);
    if (mine !== state.session) return;  // a newer reload started meanwhile
    if (state.clock === null || !state.cursor) { state.clock = page.generated_at; state.loadedAt = Date.now(); }
    state.policy = page.policy;
    renderMeta(page);
    renderWellbeing(page);
    const list = $("#feed-list");
    for (const it of page.items) list.append(it.source === "ad" && it.ad && window.gfAdCard ? window.gfAdCard(it) : postCard(it));
    state.cursor = page.cursor;
    if (!page.cursor || page.items.length === 0) {
      state.done = true; $("#more").hidden = true; $("#caught-up").hidden = false;
    }
    if (!window.gfTimings.firstFeed) window.gfTimings.firstFeed = performance.now();
    document.body.dataset.feedLoads = String(Number(document.body.dataset.feedLoads || 0) + 1);
  } catch (e) {
    say("#feed-meta", "Could not load the feed: " + e.message, true);
  } finally {
    if (mine === state.session) { state.loading = false; $("#feed-list").setAttribute("aria-busy", "false"); }
  }
}

function renderMeta(page) {
  const dropped = Object.entries(page.dropped || {}).filter(([, n]) => n > 0).map(([k, n]) => `${k.replaceAll("_", " ")}: ${n}`);
  const bits = [`policy: ${page.policy}`, `ranked by ${page.ranker === "recency" ? "time" : "predicted engagement"}`,
                `${page.candidates} candidates considered`];
  if (dropped.length) bits.push("filtered out: " + dropped.join(", "));
  if (page.notice) bits.push("note: " + page.notice);
  say("#feed-meta", bits.join(" · "));
}

// The daily budget's stopping cue and the "was this worth your time?" prompt, when the page carries them.
function renderWellbeing(page) {
  const cue = $("#stopping-cue");
  cue.hidden = !page.stopping_cue;
  cue.textContent = page.stopping_cue ? page.stopping_cue.message : "";
  const box = $("#survey");
  box.hidden = !page.survey;
  if (!page.survey) return;
  $("#survey-q").textContent = page.survey.question;
  $("#survey-status").textContent = "";
  const answer = async (value) => {
    try {
      await api(ME + "events", { method: "POST", body: { events: [
        { kind: "worth_it", request_id: page.survey.answer.request_id, value, ts: now() }] } });
      $("#survey-status").textContent = "Thank you.";
      box.hidden = true;
    } catch (e) { $("#survey-status").textContent = "Could not send: " + e.message; }
  };
  $("#survey-yes").onclick = () => answer(1);
  $("#survey-no").onclick = () => answer(0);
}

function postCard(it) {
  const id = it.post;
  const whyId = "why-" + id;
  const when = new Date(it.created_at * 1000);
  const card = h("article", { class: "post", "data-post": id, "data-author": it.author, "data-created": String(it.created_at),
                              "data-repost-by": it.repost_by || "", "aria-label": `Post by @${it.author_handle}` });
  const text = h("p", { class: "text", text: it.text });
  if (it.interstitial) {
    text.hidden = true;
    card.append(h("p", { class: "interstitial" }, `Labelled: ${(it.labels || []).join(", ") || "sensitive"}. `,
      h("button", { type: "button", onclick: (e) => { text.hidden = false; e.target.parentElement.remove(); } }, "Show post")));
  }
  const act = (kind, label, extra) => h("button", { type: "button", class: "act", "data-act": kind, "aria-pressed": extra ? null : "false",
                                                   onclick: (e) => onAction(e.currentTarget, kind, it) }, label);
  card.append(
    h("header", {},
      it.repost_by ? h("p", { class: "repost", text: `⟲ reposted by ${it.repost_by}` }) : null,
      h("span", { class: "handle", text: "@" + it.author_handle }), " ",
      h("time", { datetime: when.toISOString(), title: when.toUTCString(), text: ago(it.created_at) }),
      h("span", { class: "reason", text: " · " + it.reason })),
    text,
    (it.topics || []).length ? h("p", { class: "topics-line", text: it.topics.map((t) => "#" + t).join(" ") }) : "",  // (DOM append writes null as "null")
    h("p", { class: "counts" },
      h("span", { class: "c-likes", text: plural(it.counts.likes, "like") }), " · ",
      h("span", { text: plural(it.counts.reposts, "repost") }), " · ", h("span", { text: plural(it.counts.replies, "reply", "replies") }),
      h("span", { class: "score", text: ` · score ${fmt(it.score, 3)}` })),
    h("div", { class: "actions", role: "group", "aria-label": "Actions" },
      act("like", "Like"), act("repost", "Repost"), act("reply", "Reply"),
      act("see_less", "See less", true), act("report", "Report", true), act("mute", `Mute @${it.author_handle}`, true),
      h("button", { type: "button", class: "why-btn", "aria-expanded": "false", "aria-controls": whyId,
                    onclick: (e) => toggleWhy(e.currentTarget, it) }, "Why am I seeing this?")),
    h("section", { class: "why", id: whyId, hidden: true, "aria-label": "Why am I seeing this post" }),
    h("p", { class: "status", role: "status" }));
  return card;
}

async function onAction(btn, kind, it) {
  const card = btn.closest(".post");
  let wire = kind;
  if (kind === "like" && btn.getAttribute("aria-pressed") === "true") wire = "unlike";
  const ev = { kind: wire, ts: now() };
  if (kind === "mute") ev.target_user = it.author; else ev.post = it.post;
  const status = card.querySelector(".status");
  try {
    await api(ME + "events", { method: "POST", body: { events: [ev] } });
  } catch (e) { status.textContent = `Could not send ${wire}: ${e.message}`; return; }
  if (kind === "like") {
    const on = wire === "like";
    btn.setAttribute("aria-pressed", String(on)); btn.textContent = on ? "Liked" : "Like";
    it.counts.likes += on ? 1 : -1;
    card.querySelector(".c-likes").textContent = plural(it.counts.likes, "like");
  } else if (kind === "repost" || kind === "reply") {
    btn.setAttribute("aria-pressed", "true"); btn.disabled = true;
    btn.textContent = kind === "repost" ? "Reposted" : "Reply sent";
  } else {
    const what = { see_less: `You'll see less of @${it.author_handle}.`, report: "Reported: thank you.",
                   mute: `@${it.author_handle} is muted.` }[kind];
    const targets = kind === "mute" ? document.querySelectorAll(`.post[data-author="${CSS.escape(it.author)}"]`) : [card];
    for (const c of targets) { c.classList.add("gone"); c.querySelector(".status").textContent = what; }
    status.textContent = what;
  }
  if (!status.textContent) status.textContent = `Sent: ${wire}.`;
}

// ---------------------------------------------------------------- why-panels
async function toggleWhy(btn, it) {
  const panel = document.getElementById(btn.getAttribute("aria-controls"));
  const open = btn.getAttribute("aria-expanded") === "true";
  btn.setAttribute("aria-expanded", String(!open));
  panel.hidden = open;
  if (open || panel.dataset.loaded) return;
  panel.replaceChildren(h("p", { text: "Loading…" }));
  try {
    const why = await api(ME + `feed/${encodeURIComponent(it.post)}/why`);
    panel.replaceChildren(...renderWhy(why));
    panel.dataset.loaded = "1";
  } catch (e) { panel.replaceChildren(h("p", { class: "bad", text: "Could not explain: " + e.message })); }
}

function renderWhy(w) {
  const out = [h("p", { class: "why-reason" }, h("strong", { text: "Why: " }), w.reason + ".",
                 h("span", { class: "meta", text: ` (source: ${w.source.replaceAll("_", " ")}; policy: ${w.policy}; position ${w.position + 1})` }))];
  const cs = w.contributions || [];
  const sumC = cs.reduce((a, c) => a + c.contribution, 0);
  const sumA = (w.adjustments || []).reduce((a, x) => a + x.delta, 0);
  if (cs.length) {
    const max = Math.max(1e-9, ...cs.map((c) => Math.abs(c.contribution)));
    const rows = cs.map((c) => {
      const pct = (100 * Math.abs(c.contribution) / max).toFixed(1);
      const neg = c.contribution < 0;
      const detail = c.probability === null ? signed(c.contribution, 3)
        : `P ${prob(c.probability)} × weight ${fmt(c.weight, 1)} = ${signed(c.contribution, 3)}`;
      return h("div", { class: "bar-row", role: "listitem", "data-head": c.head, "data-contribution": String(c.contribution) },
        h("span", { class: "bar-label", title: c.meaning, text: c.head.replaceAll("_", " ") }),
        h("span", { class: "bar-track neg" }, neg ? h("span", { class: "bar neg", style: { width: `${pct}%` } }) : null),
        h("span", { class: "bar-track pos" }, neg ? null : h("span", { class: "bar pos", style: { width: `${pct}%` } })),
        h("span", { class: "bar-value", text: detail }));
    });
    out.push(h("h4", { text: cs[0].probability === null ? "How it scored" : "Predicted engagement × weight" }),
             h("div", { class: "bars", role: "list", "aria-label": "Contributions to the score" }, rows));
  }
  const adj = w.adjustments || [];
  out.push(h("h4", { text: "Adjustments" }),
           adj.length ? h("ul", { class: "adjustments" }, adj.map((a) => h("li", { "data-adjustment": a.name },
                          h("strong", { text: signed(a.delta, 3) }), ` ${a.name.replaceAll("_", " ")}: ${a.reason}`)))
                      : h("p", { class: "meta", text: "None: nothing moved this post up or down after scoring." }));
  if (w.placement) out.push(h("p", { class: "meta", "data-placement": "fill", text: `Placement: ${w.placement}.` }));
  out.push(h("p", { class: "sum", text: `Score ${fmt(w.score, 3)} = ${fmt(sumC, 3)} from predictions ${signed(sumA, 3)} from adjustments.` }));
  const mine = Object.entries(w.user_adjusted_weights || {});
  if (mine.length) out.push(h("p", { class: "meta", text: "Weights you changed: " + mine.map(([k, v]) => `${k} ${v}`).join(", ") }));
  if ((w.labels || []).length) out.push(h("p", { class: "meta", text: "Labels: " + w.labels.join(", ") }));
  return out;
}

// ---------------------------------------------------------------- controls
// A slider step of 10^k at most 1/100 of the range, so the platform's round defaults stay exact.
const niceStep = (span) => 10 ** Math.floor(Math.log10(span / 100));

async function loadPrefs() {
  const p = await api(ME + "prefs");
  state.prefs = p; state.dirty = new Set();
  $("#policy").value = p.policy;
  const box = $("#weights");
  const heads = Object.keys(p.bounds);
  box.replaceChildren();
  $("#weights-reset").hidden = heads.length === 0;
  if (!heads.length) box.append(h("p", { class: "meta", text: "This feed has no weights to change: it uses no predictions about you." }));
  for (const head of heads) {
    const [lo, hi] = p.bounds[head];
    const id = "w-" + head;
    const val = p.weights[head] ?? 0;
    const out = h("output", { for: id, text: fmt(val, 1) });
    const input = h("input", { type: "range", id, min: String(lo), max: String(hi), step: String(niceStep(hi - lo)), value: String(val),
                               "data-head": head, onchange: saveWeights,
                               oninput: () => { out.textContent = fmt(input.value, 1); state.dirty.add(head); } });
    box.append(h("div", { class: "weight" }, h("label", { for: id, text: head.replaceAll("_", " ") }), input, out,
                 h("span", { class: "range meta", text: `${lo} … ${hi}` })));
  }
  $("#budget").value = String(p.prefs.daily_minutes || 0);
  const more = new Set(p.prefs.topics_more || []), less = new Set(p.prefs.topics_less || []);
  for (const sel of document.querySelectorAll("select.topic")) {
    const t = sel.dataset.topic;
    sel.value = more.has(t) ? "more" : less.has(t) ? "less" : "";
  }
}

async function controlChange(what, body, path = "prefs") {
  say("#controls-status", `Saving ${what}…`);
  try {
    await api(ME + path, { method: "PUT", body });
    say("#controls-status", `Saved ${what}. Feed re-ranked.`);
    return true;
  } catch (e) { say("#controls-status", `Could not save ${what}: ${e.message}`, true); return false; }
}

async function onPolicy() {
  if (await controlChange("feed choice", { policy: $("#policy").value })) {
    await loadPrefs(); $("#how-policy").value = $("#policy").value;
    loadStatement(); loadFeed(true);
  }
}

async function saveWeights() {
  const weights = {};
  // only the weights this person moved (now or before): untouched ones stay exactly the platform's
  const saved = ((state.prefs.prefs.weights || {})[state.prefs.policy]) || {};
  for (const input of document.querySelectorAll("#weights input[type=range]")) {
    const head = input.dataset.head;
    if (state.dirty.has(head) || head in saved) weights[head] = Number(input.value);
  }
  if (await controlChange("weights", { policy: state.prefs.policy, weights })) { await loadPrefs(); loadFeed(true); }
}

async function resetWeights() {
  if (await controlChange("weights", { policy: state.prefs.policy, weights: {} })) { await loadPrefs(); loadFeed(true); }
}

async function onTopic() {
  const more = [], less = [];
  for (const sel of document.querySelectorAll("select.topic")) {
    if (sel.value === "more") more.push(sel.dataset.topic); else if (sel.value === "less") less.push(sel.dataset.topic);
  }
  if (await controlChange("topics", { topics_more: more, topics_less: less })) loadFeed(true);
}

async function loadMuted() {
  const r = await api(ME + "muted-words");
  state.muted = r.words;
  $("#muted-list").replaceChildren(...r.words.map((w) => h("li", { class: "chip" }, w,
    h("button", { type: "button", "aria-label": `Unmute ${w}`, onclick: () => setMuted(state.muted.filter((x) => x !== w)) }, "×"))));
}

async function setMuted(words) {
  if (await controlChange("muted words", { words }, "muted-words")) { await loadMuted(); loadFeed(true); }
}

// ---------------------------------------------------------------- your data
function dl(label, value) { return [h("dt", { text: label }), h("dd", {}, value)]; }
const list = (xs) => xs.length ? xs.join(", ") : "none";

async function loadData() {
  say("#data-status", "Loading…");
  try {
    const d = await api(ME + "data");
    renderData(d);
    say("#data-status", `${d.counts.events} events held about ${d.user}.`);
  } catch (e) { say("#data-status", "Could not load your data: " + e.message, true); }
}

function renderData(d) {
  const interests = h("ul", { class: "shares" }, d.inferred_interests.map((t) => h("li", {},
    h("span", { class: "share-label", text: "#" + t.topic }),
    h("span", { class: "share-track" }, h("span", { class: "bar pos", style: { width: `${(100 * t.share).toFixed(1)}%` } })),
    h("span", { text: `${(100 * t.share).toFixed(0)}%` }))));
  const aff = h("table", { class: "tbl" }, h("caption", { text: "Accounts you interact with most (affinity decays over time)" }),
    h("thead", {}, h("tr", {}, h("th", { text: "account" }), h("th", { text: "affinity" }))),
    h("tbody", {}, d.author_affinity.map((a) => h("tr", {}, h("td", { text: a.author }), h("td", { text: fmt(a.affinity) })))));
  const evs = d.events.slice(0, 200);
  const events = h("table", { class: "tbl", id: "events-table" },
    h("caption", { text: `Your latest events (${evs.length} of ${d.counts.events} shown, newest first)` }),
    h("thead", {}, h("tr", {}, ["kind", "post", "user", "time", "where", "request"].map((c) => h("th", { text: c })))),
    h("tbody", {}, evs.map((e) => h("tr", { "data-kind": e.kind, "data-post": e.post || "" },
      h("td", { text: e.kind }), h("td", { text: e.post || "" }), h("td", { text: e.target_user || "" }),
      h("td", { text: new Date(e.ts * 1000).toISOString().replace("T", " ").slice(0, 19) }),
      h("td", { text: e.surface || "" }), h("td", { text: e.request_id || "" })))));
  $("#data-view").replaceChildren(
    h("dl", { class: "facts" },
      dl("Events held", String(d.counts.events)), dl("Posts seen", String(d.counts.seen_posts)),
      dl("Interests you picked", list(d.onboarding_interests)),
      dl("Following", d.following.length ? `${d.following.length}: ${d.following.slice(0, 30).join(", ")}${d.following.length > 30 ? "…" : ""}` : "nobody"),
      dl("Muted accounts", list(d.muted)), dl("Blocked accounts", list(d.blocked)),
      dl("Muted words", list(d.muted_words)), dl("Asked to see less of", list(d.see_less_authors)),
      dl("Preferences", JSON.stringify(d.preferences)),
      dl("Inferred side (bridging model)", fmt(d.bridging_side)),
      dl("Collaborative profile", d.has_collaborative_profile ? "yes: your likes shape recommendations" : "none")),
    h("h3", { text: "Interests we infer from your activity" }), d.inferred_interests.length ? interests : h("p", { text: "none" }),
    h("h3", { text: "Affinities" }), aff,
    h("h3", { text: "Events" }), events);
}

async function download() {
  const r = await fetch(ME + "data", { headers: { "X-Glassfeed-Web": "1" }, credentials: "same-origin" });
  if (!r.ok) { say("#data-status", "Download failed: " + r.status, true); return; }
  const url = URL.createObjectURL(await r.blob());
  const a = h("a", { href: url, download: `glassfeed-${document.body.dataset.user}.json` });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function deleteData() {
  $("#delete-confirm").hidden = true;
  try {
    const posts = $("#data-delete-posts").checked;
    const r = await api(ME + "data" + (posts ? "?posts=true" : ""), { method: "DELETE" });
    const n = Object.entries(r.deleted).map(([k, v]) => `${v} ${k}`).join(", ");
    await loadData();
    say("#data-status", `Deleted: ${n}.`);
    $("#data-view").prepend(h("div", { id: "data-kept" }, h("h3", { text: "What was kept, and why" }),
      h("ul", {}, ...r.kept.map((k) => h("li", { text: k })))));
    await Promise.all([loadPrefs(), loadMuted()]);
    // Don't reload the feed now: serving it would log new impressions at once. It reloads when looked at.
    state.session += 1; state.cursor = null; state.done = false; state.loading = false;
    $("#caught-up").hidden = true; $("#more").hidden = false;
    $("#feed-list").replaceChildren(h("p", { class: "meta", text: "Your data was deleted. The feed loads again (and records new impressions) when you ask for more." }));
  } catch (e) { say("#data-status", "Delete failed: " + e.message, true); }
}

// ---------------------------------------------------------------- how the feed works
function esc(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
function inline(s) { return esc(s).replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>").replace(/`(.+?)`/g, "<code>$1</code>"); }

// Markdown, simply: #/##/### headings, "- " lists, paragraphs, **bold**, `code` (text escaped first).
function markdown(md) {
  const out = []; let para = [], inList = false;
  const flush = () => { if (para.length) out.push(`<p>${inline(para.join(" "))}</p>`); para = []; };
  for (const raw of md.split("\n")) {
    const line = raw.trimEnd();
    const m = line.match(/^(#{1,3})\s+(.*)$/);
    const li = line.match(/^\s*[-*]\s+(.*)$/);
    if (!li && inList) { out.push("</ul>"); inList = false; }
    if (m) { flush(); const n = m[1].length + 2; out.push(`<h${n}>${inline(m[2])}</h${n}>`); }
    else if (li) { flush(); if (!inList) { out.push("<ul>"); inList = true; } out.push(`<li>${inline(li[1])}</li>`); }
    else if (!line.trim()) flush();
    else para.push(line.trim());
  }
  flush(); if (inList) out.push("</ul>");
  return out.join("\n");
}

async function loadStatement() {
  const name = $("#how-policy").value;
  try {
    const r = await fetch(`/v1/policies/${encodeURIComponent(name)}/statement`);
    $("#statement").innerHTML = markdown(await r.text());
  } catch (e) { $("#statement").textContent = "Could not load the statement: " + e.message; }
}

// ---------------------------------------------------------------- tabs, sign-in, start
function selectTab(tab) {
  for (const t of document.querySelectorAll("[role=tab]")) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on)); t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (tab.id === "tab-data") loadData();
  if (tab.id === "tab-how") loadStatement();
}

function wireTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => selectTab(t));
    t.addEventListener("keydown", (e) => {
      const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (d) { const n = tabs[(i + d + tabs.length) % tabs.length]; n.focus(); selectTab(n); }
    });
  });
}

async function signIn(e) {
  e.preventDefault();
  try {
    await api("/web/session", { method: "POST", body: { user: $("#token-user").value.trim(), token: $("#token-value").value.trim() } });
    // a clicked push opened /?n=<ids> (sw.js) while signed out: keep it, so the page sends the open once signed in
    const n = new URLSearchParams(location.search).get("n");
    location.href = n ? "/?n=" + encodeURIComponent(n) : "/";
  } catch (err) { say("#token-status", err.message, true); }
}

function start() {
  $("#token-form").addEventListener("submit", signIn);
  const so = $("#sign-out");
  if (so) so.addEventListener("click", async () => { await api("/web/session", { method: "DELETE" }); location.href = "/"; });
  if (!document.body.dataset.user) return;
  wireTabs();
  $("#more").addEventListener("click", () => loadFeed(false));
  new IntersectionObserver((es) => { if (es.some((x) => x.isIntersecting)) loadFeed(false); }, { rootMargin: "400px" })
    .observe($("#more"));
  $("#policy").addEventListener("change", onPolicy);
  $("#weights-reset").addEventListener("click", resetWeights);
  for (const sel of document.querySelectorAll("select.topic")) sel.addEventListener("change", onTopic);
  $("#budget-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await controlChange("daily budget", { daily_minutes: Number($("#budget").value || 0) })) loadFeed(true);
  });
  $("#mute-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const w = $("#mute-word").value.trim().toLowerCase();
    if (w && !state.muted.includes(w)) setMuted([...state.muted, w]);
    $("#mute-word").value = "";
  });
  $("#data-refresh").addEventListener("click", loadData);
  $("#data-download").addEventListener("click", download);
  $("#data-delete").addEventListener("click", () => { $("#delete-confirm").hidden = false; $("#data-delete-no").focus(); });
  $("#data-delete-no").addEventListener("click", () => { $("#delete-confirm").hidden = true; });
  $("#data-delete-yes").addEventListener("click", deleteData);
  $("#how-policy").addEventListener("change", loadStatement);
  loadPrefs().then(() => { $("#how-policy").value = $("#policy").value; }).catch((e) => say("#controls-status", e.message, true));
  loadMuted().catch(() => {});
  loadFeed(true);
}

document.addEventListener("DOMContentLoaded", start);
