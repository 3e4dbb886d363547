// glassfeed web page: "People you may know" (docs/suggestions.md). The signed-in person's suggestions, each with why
// it is there, a Follow button and a choice of suggestion policy. Vanilla JS, no build step; everything from the
// server is written with textContent. The suggestions come through the same-origin proxy /web/api/me/suggestions;
// a follow is the person's own "follow" event through /web/api/me/events (the path the feed's Mute button takes),
// naming the list it came from (request_id, surface "suggestions": the server logged each suggestion shown under that
// id, and the follow model learns from what was followed); the policies are public (/v1/suggestion-policies).
// Loaded after app.js on the same page (as ads.js is): its h() and api() build the elements and make the calls.
"use strict";

(() => {
  const ME = "/web/api/me/";
  const LIMIT = 10;
  const st = { policy: null, policies: {}, loading: 0 };
  const $ = (sel) => document.querySelector(sel);

  function say(msg, bad = false) {
    const el = $("#suggest-status");
    el.textContent = msg;
    el.classList.toggle("bad", bad);
  }

  // Why the list is empty, in words: the sources suggestions come from, none of which points anywhere new yet.
  const EMPTY = "Nobody to suggest right now: suggestions come from the people you follow and whom they follow, "
    + "people who follow you, posts you engaged with, your community and (only if you both opted in) uploaded "
    + "contacts, and none of these points to someone you don't already follow, block or mute.";

  async function loadPolicies() {
    const sel = $("#suggest-policy");
    try {
      const body = await api("/v1/suggestion-policies");
      for (const p of body.policies) st.policies[p.name] = p;
      sel.replaceChildren(...body.policies.map((p) => h("option", { value: p.name, text: p.title || p.name })));
      if (st.policies.growth) sel.value = "growth";
      st.policy = sel.value || null;
      showStatement();
    } catch (e) {
      sel.closest(".suggest-policy").hidden = true;  // the list still works with the server's default policy
    }
  }

  function showStatement() {
    const p = st.policies[st.policy];
    $("#suggest-statement").textContent = p ? (p.summary || "").trim() : "";
    $("#suggest-rules").textContent = p ? p.statement || "" : "";  // the policy in full, generated from its data
  }

  async function load() {
    const mine = ++st.loading;
    const list = $("#suggest-list");
    list.setAttribute("aria-busy", "true");
    const q = new URLSearchParams({ limit: String(LIMIT) });
    if (st.policy) q.set("policy", st.policy);
    try {
      const body = await api(ME + "suggestions?" + q);
      if (mine !== st.loading) return;  // a newer load started meanwhile
      list.replaceChildren(...body.items.map((it) => card(it, body.request_id)));
      list.dataset.policy = body.policy;
      if (!body.items.length) say(EMPTY);
      else {
        const by = body.ranked_by === "learned" ? "the learned follow model" : body.ranked_by.replaceAll("_", " ");
        say(`${body.items.length} ${body.items.length === 1 ? "suggestion" : "suggestions"}, policy ${body.policy}, ordered by ${by}.`);
      }
    } catch (e) {
      if (mine === st.loading) { list.replaceChildren(); say("Could not load suggestions: " + e.message, true); }
    } finally {
      if (mine === st.loading) list.setAttribute("aria-busy", "false");
    }
  }

  function card(it, listId) {
    const id = "suggest-" + it.user;
    const li = h("li", { class: "suggestion", "data-user": it.user, "aria-labelledby": id,
                         "data-cross": it.cross_community ? "true" : "false" });
    const status = h("p", { class: "status", role: "status" });
    const btn = h("button", { type: "button", class: "follow", "aria-pressed": "false",
                              "aria-label": `Follow @${it.handle}`, onclick: () => follow(btn, li, it, status, listId) }, "Follow");
    li.append(
      h("p", { class: "suggest-who" }, h("strong", { id, class: "handle", text: "@" + it.handle }),
        it.handle !== it.user ? h("span", { class: "meta", text: ` (${it.user})` }) : null),
      h("p", { class: "suggest-why", text: it.explanation }),
      (it.found_by || []).length
        ? h("p", { class: "meta suggest-found", text: "found by: " + it.found_by.map((g) => g.replaceAll("_", " ")).join(", ") })
        : null,
      btn, status);
    return li;
  }

  async function follow(btn, li, it, status, listId) {
    btn.disabled = true;
    const ev = { kind: "follow", target_user: it.user, surface: "suggestions" };
    if (listId) ev.request_id = listId;  // the suggestion list this follow came from
    const ts = window.gfNow ? window.gfNow() : null;  // the feed's clock (data time on a demo store)
    if (ts !== null) ev.ts = ts;
    try {
      await api(ME + "events", { method: "POST", body: { events: [ev] } });
    } catch (e) {
      btn.disabled = false;
      status.textContent = "Could not follow: " + e.message;
      status.classList.add("bad");
      return;
    }
    btn.textContent = "Following";
    btn.setAttribute("aria-pressed", "true");
    li.classList.add("followed");
    status.textContent = `You follow @${it.handle} now; they leave these suggestions when the list is refreshed.`;
  }

  function init() {
    if (!$("#suggest-panel")) return;
    $("#suggest-policy").addEventListener("change", (e) => { st.policy = e.target.value; showStatement(); load(); });
    $("#suggest-refresh").addEventListener("click", () => load());
    loadPolicies().then(load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
