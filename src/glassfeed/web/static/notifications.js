// glassfeed web page: the notification bell, the inbox with "Why did I get this?", notification settings and Web
// Push sign-up in this browser (the service worker is /sw.js).
// Vanilla JS, no build step; everything from the server is written with textContent. Per-person calls go through
// the same-origin proxy /web/api/me/* (the server adds the credential); the policies are public (/v1/...).
"use strict";

(() => {
  const ME = "/web/api/me/";
  // Mirrors glassfeed.notifications.policy.KINDS and KIND_WORDS (tests/test_notifications_web.py checks it).
  const KIND_WORDS = {
    reply: "replies to your posts",
    mention: "posts that mention you",
    quote: "quotes of your posts",
    follow: "new followers",
    like: "likes of your posts",
    repost: "reposts of your posts",
    affinity_post: "new posts from the accounts you interact with most",
    you_might_like: "posts from outside your network you might like",
    weekly_digest: "a weekly summary of what you missed from the people you follow",
  };
  const KINDS = Object.keys(KIND_WORDS);
  // The settings the form edits; a 422 naming one of them is shown next to its control.
  const FIELDS = ["policy", "kinds_off", "kinds_on", "daily_cap", "digest_times", "quiet_start", "quiet_end", "time_zone"];
  const POLL_MS = 60_000;

  const st = {
    unread: 0, items: [], loaded: false, key: "",
    policies: null, policiesLoading: null, byName: {}, statements: {}, defaultPolicy: null,
    saved: null,            // the settings as last read from the server
    targets: new Set(),     // ids of the notifications a clicked push opened the page for (shown highlighted)
    off: new Set(), on: new Set(),  // the person's kinds_off / kinds_on as the form holds them
  };

  const $ = (sel) => document.querySelector(sel);

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
    return el;
  }

  class ApiError extends Error {
    constructor(status, data) {
      super((data && data.error) || (typeof data === "string" && data) || `HTTP ${status}`);
      this.status = status;
      this.detail = (data && Array.isArray(data.detail)) ? data.detail : [];
    }
  }

  async function api(path, opts = {}) {
    const init = { method: opts.method || "GET", headers: { "X-Glassfeed-Web": "1" }, credentials: "same-origin" };
    if (opts.body !== undefined) { init.body = JSON.stringify(opts.body); init.headers["Content-Type"] = "application/json"; }
    const r = await fetch(path, init);
    const ct = r.headers.get("content-type") || "";
    const data = ct.includes("json") ? await r.json() : await r.text();
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }

  function say(sel, msg, bad = false) {
    const el = $(sel);
    if (el) { el.textContent = msg; el.classList.toggle("bad", bad); }
  }

  const when = (ts) => new Date(ts * 1000);
  const timeEl = (ts) => h("time", { datetime: when(ts).toISOString(), text: when(ts).toLocaleString() });
  const num = (x, d = 2) => (x === null || x === undefined) ? "–" : Number(x).toFixed(d);
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  // ---------------------------------------------------------------- the bell
  function setUnread(n) {
    st.unread = n;
    const bell = $("#bell"), badge = $("#bell-count");
    bell.setAttribute("aria-label", n === 0 ? "Notifications: none unread" : `Notifications: ${n} unread`);
    bell.dataset.unread = String(n);
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.hidden = n === 0;
  }

  async function refresh() {
    try {
      const box = await api(ME + "notifications?limit=50");
      const key = JSON.stringify(box);
      const changed = key !== st.key || !st.loaded;
      st.items = box.items; st.loaded = true; st.key = key;
      setUnread(box.unread);
      if (changed && !$("#notif-panel").hidden) renderInbox();
    } catch (e) {
      if (!$("#notif-panel").hidden) say("#notif-status", "Could not load your notifications: " + e.message, true);
    }
  }

  function openPanel(open) {
    $("#bell").setAttribute("aria-expanded", String(open));
    $("#notif-panel").hidden = !open;
    if (open) {
      renderInbox();
      refresh();
      $("#notif-title").focus?.();
    } else {
      $("#bell").focus();
    }
  }

  // ---------------------------------------------------------------- the inbox
  function pushState(it) {
    if (it.pushed_at) return ["pushed", `pushed to you ${when(it.pushed_at).toLocaleString()}`];
    if (it.push_at) return ["scheduled", `push scheduled for ${when(it.push_at).toLocaleString()}`];
    return ["inbox", "not pushed: only in your inbox"];
  }

  function renderInbox() {
    const list = $("#notif-list");
    if (!st.loaded) { list.replaceChildren(h("li", { class: "meta", text: "Loading…" })); return; }
    if (!st.items.length) { list.replaceChildren(h("li", { class: "meta", text: "No notifications yet." })); return; }
    const open = new Set([...list.querySelectorAll(".notif-why:not([hidden])")].map((s) => s.dataset.id));
    list.replaceChildren(...st.items.map((it) => item(it, open.has(String(it.id)))));
    say("#notif-status", `${st.items.length} shown, ${st.unread} unread.`);
  }

  function item(it, reopen) {
    const whyId = `notif-why-${it.id}`;
    const [ps, pushText] = pushState(it);
    const cls = "notif-item" + (it.read ? "" : " unread") + (st.targets.has(String(it.id)) ? " notif-target" : "");
    const li = h("li", { class: cls, "data-id": String(it.id), "data-kind": it.kind,
                         "data-read": String(it.read), "data-push": ps, "data-post": it.post || null },
      // the text is the button that opens it: sends the open, marks it read, goes to its post when the page has it
      h("p", { class: "notif-text" },
        h("button", { type: "button", class: "notif-open", onclick: (e) => openItem(e.currentTarget, it),
                      title: it.post ? "Open: marks it read and shows the post" : "Open: marks it read" }, it.text)),
      h("p", { class: "meta" },
        timeEl(it.updated_at ?? it.created_at), " · ",
        h("span", { class: "notif-read", text: it.read ? "read" : "unread" }), " · ",
        h("span", { class: "notif-push", text: pushText })),
      h("button", { type: "button", class: "notif-why-btn", "aria-expanded": "false", "aria-controls": whyId,
                    onclick: (e) => toggleWhy(e.currentTarget, it) }, "Why did I get this?"),
      h("section", { class: "notif-why", id: whyId, "data-id": String(it.id), hidden: true,
                     "aria-label": "Why you got this notification" }));
    if (reopen) queueMicrotask(() => toggleWhy(li.querySelector(".notif-why-btn"), it));
    return li;
  }

  async function toggleWhy(btn, it) {
    const panel = document.getElementById(btn.getAttribute("aria-controls"));
    const open = btn.getAttribute("aria-expanded") === "true";
    btn.setAttribute("aria-expanded", String(!open));
    panel.hidden = open;
    if (open) return;
    panel.replaceChildren(h("p", { class: "meta", text: "Loading…" }));
    try {
      const [why, mine] = await Promise.all([
        api(ME + `notifications/${encodeURIComponent(it.id)}/why`),
        st.saved ? null : api(ME + "notification-settings"),
        loadPolicies().catch(() => null)]);  // only for the policy's title
      if (mine && !st.saved) st.saved = mine.settings || {};
      panel.replaceChildren(...renderWhy(why));
    } catch (e) { panel.replaceChildren(h("p", { class: "bad", text: "Could not explain: " + e.message })); }
  }

  function renderWhy(w) {
    const about = (w.source && w.source.about) || KIND_WORDS[w.kind] || w.kind;
    const n = (w.source && w.source.events || []).length;
    const pol = st.byName[w.policy];
    const above = w.worth >= w.push_threshold;
    const row = (label, ...value) => [h("dt", { text: label }), h("dd", {}, ...value)];
    const off = new Set((w.turn_off && w.turn_off.body && w.turn_off.body.kinds_off) || []);
    const already = (st.saved ? new Set(st.saved.kinds_off || []) : new Set()).has(w.kind);
    const status = h("p", { class: "status", role: "status" });
    const turnOff = h("button", { type: "button", class: "notif-turn-off", "data-kind": w.kind, disabled: already || !off.has(w.kind),
                                  onclick: (e) => turnOffKind(e.currentTarget, w, status) },
      already ? `Already turned off (${about})` : `Turn off this kind (${about})`);
    return [
      h("dl", { class: "notif-facts" },
        row("Source", `${cap(about)}: ${n} ${n === 1 ? "event" : "events"} (${w.text}).`),
        row("Chance × value",
          h("span", { class: "notif-worth",
                      text: `chance you open it ${num(w.p_open)} × how much it matters ${num(w.value, 1)} = ${num(w.worth, 3)}, ` +
                            `${above ? "at or above" : "below"} the push threshold ${num(w.push_threshold, 3)} when it was decided` }),
          w.p_open_from ? h("span", { class: "meta", text: ` (chance from ${w.p_open_from})` }) : null),
        row("Rule", h("span", { class: "notif-rule", "data-rule": w.rule, text: cap(w.rule_words || w.rule) + "." })),
        // the policy that decided it (recorded with the decision), and the person's policy now when it differs
        row("Decided under", h("span", { class: "notif-policy", "data-policy": w.policy,
                                  text: (pol ? `${pol.title} (${w.policy})` : w.policy) +
                                        (w.policy_from === "the decision" ? "" : " (your policy now: the deciding one was not recorded)") })),
        w.policy_now && w.policy_now !== w.policy
          ? row("Your policy now", h("span", { class: "notif-policy-now", "data-policy": w.policy_now,
                                     text: (st.byName[w.policy_now] ? `${st.byName[w.policy_now].title} (${w.policy_now})` : w.policy_now) +
                                           ": new notifications follow it" }))
          : []),
      h("p", { class: "meta", text: "Turning a kind off stops its pushes; it still appears in your inbox." }),
      turnOff, status];
  }

  async function turnOffKind(btn, w, status) {
    btn.disabled = true;
    status.textContent = "Saving…"; status.classList.remove("bad");
    try {
      const got = await api(ME + "notification-settings", { method: "PUT", body: w.turn_off.body });
      status.textContent = `${cap(KIND_WORDS[w.kind] || w.kind)} will no longer be pushed to you; they stay in your inbox.`;
      btn.textContent = `Turned off (${KIND_WORDS[w.kind] || w.kind})`;
      applySettings(got);
    } catch (e) {
      btn.disabled = false;
      status.textContent = "Could not turn it off: " + e.message; status.classList.add("bad");
    }
  }

  // ---------------------------------------------------------------- opening a notification
  // Opening one (a click on its inbox item, or on a pushed message: sw.js then opens /?n=<ids>) sends the person's
  // notification_open event naming it (request_id "n<id>", surface "inbox" or "push") through the proxy to their
  // events: the server marks it read and the open model learns from it. Events carry the feed's clock (app.js's
  // gfNow), as the page's other events do, so a store served on data time stays consistent.
  const feedNow = () => (typeof window.gfNow === "function" ? window.gfNow() : null);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function sendOpens(ids, surface, waitMs = 0) {
    for (let t = 0; feedNow() === null && t < waitMs; t += 100) await sleep(100);  // the first feed page sets it
    const ts = feedNow();
    const events = ids.map((id) => {
      const ev = { kind: "notification_open", request_id: `n${id}`, surface };
      if (ts !== null) ev.ts = ts;
      return ev;
    });
    return api(ME + "events", { method: "POST", body: { events } });
  }

  function markReadHere(ids) {
    const want = new Set(ids.map(String));
    let changed = 0;
    for (const it of st.items) if (want.has(String(it.id)) && !it.read) { it.read = true; changed += 1; }
    setUnread(Math.max(0, st.unread - changed));
    if (!$("#notif-panel").hidden) renderInbox();
  }

  // Go to the notification's post when the feed on this page shows it (the page has no view of a single post).
  function showPost(it) {
    const card = it.post ? document.querySelector(`#feed-list article.post[data-post="${CSS.escape(it.post)}"]`) : null;
    if (!card) return false;
    const tab = $("#tab-feed");
    if (tab && tab.getAttribute("aria-selected") !== "true") tab.click();
    openPanel(false);
    for (const c of document.querySelectorAll(".notif-target")) c.classList.remove("notif-target");
    card.classList.add("notif-target");
    card.tabIndex = -1;
    card.scrollIntoView({ block: "center" });
    card.focus({ preventScroll: true });
    return true;
  }

  const focusItem = (id) => $(`#notif-list .notif-item[data-id="${CSS.escape(String(id))}"] .notif-open`)?.focus();

  async function openItem(btn, it) {
    if (btn.dataset.busy) return;
    btn.dataset.busy = "1";
    try {
      await sendOpens([it.id], "inbox");
      markReadHere([it.id]);
      await refresh();  // the server's inbox (it read it on the event), drawn before the focus and message below
      if (!showPost(it)) {
        focusItem(it.id);
        say("#notif-status", it.post ? "Opened and marked read. Its post is not in your feed on this page." : "Opened and marked read.");
      }
    } catch (e) {
      say("#notif-status", "Could not open it: " + e.message, true);
    } finally { delete btn.dataset.busy; }
  }

  // /?n=<ids>: the page was opened from a clicked push. Take the parameter off the URL first (a reload or the back
  // button must not send the open again), then send one open per notification, and show it.
  async function openFromPush() {
    const url = new URL(location.href);
    const raw = url.searchParams.get("n");
    if (raw === null) return;
    url.searchParams.delete("n");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    const ids = [...new Set(raw.split(",").map((x) => x.trim()).filter((x) => /^[0-9]{1,15}$/.test(x))
      .map((x) => String(Number(x))))].slice(0, 50);
    if (!ids.length) return;
    try {
      await sendOpens(ids, "push", 10_000);
    } catch (e) {
      openPanel(true);
      say("#notif-status", "Could not record that you opened this notification: " + e.message, true);
      return;
    }
    markReadHere(ids);
    await refresh();
    const mine = st.items.filter((it) => ids.includes(String(it.id)));
    if (mine.length === 1 && showPost(mine[0])) return;
    st.targets = new Set(mine.map((it) => String(it.id)));
    openPanel(true);
    if (mine.length) focusItem(mine[0].id);
  }

  async function markAllRead() {
    try {
      const r = await api(ME + "notifications/read", { method: "POST", body: {} });
      setUnread(r.unread);
      for (const it of st.items) it.read = true;
      renderInbox();
      say("#notif-status", `Marked ${r.marked} read.`);
      refresh();
    } catch (e) { say("#notif-status", "Could not mark them read: " + e.message, true); }
  }

  // ---------------------------------------------------------------- settings
  // The kinds a policy pushes unless the person says otherwise, from its plain-language statement (the list under
  // "What may be pushed to you:").
  function defaultKinds(statement) {
    const out = new Set();
    const words = Object.fromEntries(KINDS.map((k) => [KIND_WORDS[k], k]));
    let inList = false;
    for (const line of (statement || "").split("\n")) {
      if (line.includes("What may be pushed to you:")) { inList = true; continue; }
      if (!inList) continue;
      const m = line.match(/^- (.*)$/);
      if (!m) break;
      if (words[m[1].trim()]) out.add(words[m[1].trim()]);
    }
    return out;
  }

  function loadPolicies() {
    if (!st.policiesLoading) {
      st.policiesLoading = fetchPolicies();
      st.policiesLoading.catch(() => { st.policiesLoading = null; });  // try again next time
    }
    return st.policiesLoading;
  }

  async function fetchPolicies() {
    const r = await api("/v1/notification-policies");
    st.policies = r.policies; st.defaultPolicy = r.default;
    st.byName = Object.fromEntries(r.policies.map((p) => [p.name, p]));
    await Promise.all(r.policies.map(async (p) => { st.statements[p.name] = await api(`/v1/notification-policies/${encodeURIComponent(p.name)}`); }));
    $("#nset-policies").replaceChildren(...r.policies.map((p) => {
      const id = "nset-policy-" + p.name;
      return h("div", { class: "nset-policy" },
        h("input", { type: "radio", name: "nset-policy", id, value: p.name, "aria-describedby": id + "-summary",
                     onchange: onPolicyChange }),
        h("label", { for: id, text: p.title + (p.name === r.default ? " (the default)" : "") }),
        h("p", { class: "meta", id: id + "-summary", text: p.summary }));
    }));
  }

  const chosenPolicy = () => (document.querySelector("input[name=nset-policy]:checked") || {}).value || st.defaultPolicy;

  function renderStatement(name) {
    const box = $("#nset-statement");
    box.dataset.policy = name;
    const kids = [];
    let ul = null;
    for (const line of (st.statements[name] || "").split("\n")) {
      const li = line.match(/^- (.*)$/);
      if (li) { if (!ul) { ul = h("ul"); kids.push(ul); } ul.append(h("li", { text: li[1] })); continue; }
      ul = null;
      if (!line.trim()) continue;
      const hd = line.match(/^#+\s+(.*)$/);
      kids.push(hd ? h("h4", { text: hd[1] }) : h("p", { text: line }));
    }
    box.replaceChildren(...kids);
  }

  function renderKinds() {
    const defaults = defaultKinds(st.statements[chosenPolicy()]);
    $("#nset-kind-boxes").replaceChildren(...KINDS.map((k) => {
      const id = "nset-kind-" + k;
      const on = st.on.has(k) || (defaults.has(k) && !st.off.has(k));
      return h("div", { class: "nset-kind" },
        h("input", { type: "checkbox", id, "data-kind": k, checked: on, onchange: (e) => onKind(k, e.currentTarget.checked) }),
        h("label", { for: id, text: cap(KIND_WORDS[k]) + (defaults.has(k) ? "" : " (not pushed by this policy unless you turn it on)") }));
    }));
  }

  function onKind(k, checked) {
    const defaults = defaultKinds(st.statements[chosenPolicy()]);
    if (checked) { st.off.delete(k); if (!defaults.has(k)) st.on.add(k); }
    else { st.on.delete(k); st.off.add(k); }
  }

  function onPolicyChange() {
    const name = chosenPolicy();
    const defaults = defaultKinds(st.statements[name]);
    for (const k of [...st.on]) if (defaults.has(k)) st.on.delete(k);  // already pushed by this policy
    renderStatement(name);
    renderKinds();
  }

  const browserZone = () => { try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch { return ""; } };

  function applySettings(got) {
    const s = got.settings || {};
    st.saved = s;
    st.off = new Set(s.kinds_off || []); st.on = new Set(s.kinds_on || []);
    const name = got.policy || s.policy || st.defaultPolicy;
    for (const r of document.querySelectorAll("input[name=nset-policy]")) r.checked = r.value === name;
    $("#nset-daily_cap").value = s.daily_cap ?? "";
    $("#nset-digest_times").value = (s.digest_times || []).join(", ");
    $("#nset-quiet_start").value = s.quiet_start || "";
    $("#nset-quiet_end").value = s.quiet_end || "";
    const zone = s.time_zone || browserZone();
    $("#nset-time_zone").value = zone;
    $("#nset-hint-tz").textContent = s.time_zone ? "Your saved time zone." :
      (zone ? `From your browser (${zone}); saved when you save these settings.` : "An IANA name such as Europe/Paris.");
    renderStatement(name);
    renderKinds();
  }

  async function loadSettings() {
    say("#nset-status", "Loading…");
    try {
      await loadPolicies();
      applySettings(await api(ME + "notification-settings"));
      if (!$("#nset-zones").childElementCount && Intl.supportedValuesOf) {
        $("#nset-zones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((z) => h("option", { value: z })));
      }
      say("#nset-status", "");
    } catch (e) { say("#nset-status", "Could not load your notification settings: " + e.message, true); }
  }

  function clearErrors() {
    for (const f of FIELDS) {
      const err = document.getElementById("nset-err-" + f);
      err.hidden = true; err.textContent = "";
    }
    for (const el of document.querySelectorAll("#notif-settings [aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showError(field, reason) {
    const err = document.getElementById("nset-err-" + field);
    if (!err) return false;
    err.textContent = reason; err.hidden = false;
    const ctl = document.getElementById("nset-" + field) || $(field.startsWith("kinds") ? "#nset-kinds" : "#nset-policy");
    ctl.setAttribute("aria-invalid", "true");
    if (ctl.focus) ctl.focus();
    return true;
  }

  function formBody() {
    const body = { policy: chosenPolicy() };
    if (st.off.size) body.kinds_off = [...st.off].sort();
    if (st.on.size) body.kinds_on = [...st.on].sort();
    const capTxt = $("#nset-daily_cap").value.trim();
    if (capTxt !== "") body.daily_cap = /^-?\d+$/.test(capTxt) ? Number(capTxt) : capTxt;  // the server names a bad one
    const times = $("#nset-digest_times").value.split(/[,\s]+/).map((t) => t.trim()).filter(Boolean);
    if (times.length) body.digest_times = times;
    for (const k of ["quiet_start", "quiet_end"]) { const v = $("#nset-" + k).value; if (v) body[k] = v; }
    const zone = $("#nset-time_zone").value.trim();
    if (zone) body.time_zone = zone;
    return body;
  }

  async function saveSettings(e) {
    e.preventDefault();
    clearErrors();
    say("#nset-status", "Saving…");
    try {
      const got = await api(ME + "notification-settings", { method: "PUT", body: formBody() });
      applySettings(got);
      say("#nset-status", "Saved. New notifications follow these settings.");
      if (st.loaded) refresh();
    } catch (err) {
      const shown = err.status === 422 && err.detail.some((d) => showError(d.field, d.reason));
      say("#nset-status", shown ? "Not saved: see the marked field." : "Not saved: " + err.message, true);
    }
  }

  function toggleSettings() {
    const btn = $("#notif-settings-toggle"), form = $("#notif-settings");
    const open = btn.getAttribute("aria-expanded") !== "true";
    btn.setAttribute("aria-expanded", String(open));
    form.hidden = !open;
    if (open) { loadSettings(); refreshPush(); }
  }

  // ---------------------------------------------------------------- Web Push in this browser
  // The service worker (/sw.js, served by the app) shows what the notification worker pushes. Turning push on
  // registers it, subscribes with the server's VAPID public key and sends the subscription to
  // /v1/users/{id}/push-subscriptions (through the proxy); turning it off tells the server first, then the browser.
  const pushSupported = () => window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window;

  function b64urlBytes(s) {
    const raw = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  async function currentSubscription() {
    const reg = await navigator.serviceWorker.getRegistration("/");
    return reg ? reg.pushManager.getSubscription() : null;
  }

  function showPush(on, msg, bad = false) {
    $("#nset-push-on").hidden = on;
    $("#nset-push-off").hidden = !on;
    $("#nset-push").dataset.subscribed = String(on);
    say("#nset-push-status", msg, bad);
  }

  async function refreshPush() {
    if (!pushSupported()) {
      $("#nset-push-on").disabled = true;
      showPush(false, "This browser cannot receive push notifications here (it needs service workers and the Push API, over HTTPS).");
      return;
    }
    try {
      const sub = await currentSubscription();
      showPush(!!sub, sub ? "Push notifications are on in this browser." : "Push notifications are off in this browser.");
    } catch (e) { showPush(false, "Could not read this browser's push state: " + e.message, true); }
  }

  async function pushOn() {
    const btn = $("#nset-push-on");
    btn.disabled = true;
    say("#nset-push-status", "Turning push notifications on…");
    try {
      if (window.Notification && Notification.permission !== "granted") {
        if (await Notification.requestPermission() !== "granted") throw new Error("this browser does not allow notifications from this site");
      }
      const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      await navigator.serviceWorker.ready;
      const { key } = await api("/v1/notifications/vapid-public-key");
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) });
      try {
        await api(ME + "push-subscriptions", { method: "POST", body: sub.toJSON() });
      } catch (e) {
        await sub.unsubscribe().catch(() => {});  // the server did not take it: no subscription it cannot use
        throw e;
      }
      showPush(true, "Push notifications are on in this browser.");
    } catch (e) {
      showPush(false, "Could not turn push notifications on: " + e.message, true);
    } finally { btn.disabled = false; }
  }

  async function pushOff() {
    const btn = $("#nset-push-off");
    btn.disabled = true;
    say("#nset-push-status", "Turning push notifications off…");
    try {
      const sub = await currentSubscription();
      if (sub) {
        try { await api(ME + "push-subscriptions", { method: "DELETE", body: { endpoint: sub.endpoint } }); }
        catch (e) { if (e.status !== 404) throw e; }  // the server had forgotten it already
        await sub.unsubscribe();
      }
      showPush(false, "Push notifications are off in this browser.");
    } catch (e) {
      showPush(true, "Could not turn push notifications off: " + e.message, true);
    } finally { btn.disabled = false; }
  }

  // ---------------------------------------------------------------- start
  function start() {
    if (!document.body.dataset.user || !$("#bell")) return;
    $("#notif-title").tabIndex = -1;
    $("#bell").addEventListener("click", () => openPanel($("#notif-panel").hidden));
    $("#notif-close").addEventListener("click", () => openPanel(false));
    $("#notif-panel").addEventListener("keydown", (e) => { if (e.key === "Escape") openPanel(false); });
    $("#notif-read-all").addEventListener("click", markAllRead);
    $("#notif-settings-toggle").addEventListener("click", toggleSettings);
    $("#notif-settings").addEventListener("submit", saveSettings);
    $("#nset-push-on").addEventListener("click", pushOn);
    $("#nset-push-off").addEventListener("click", pushOff);
    refresh();
    openFromPush();
    setInterval(() => { if (document.visibilityState === "visible") refresh(); }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
