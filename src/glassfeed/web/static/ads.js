// glassfeed web page: ads in the feed. Each ad item is drawn apart from posts, with its label ("Ad · paid by X ·
// on behalf of Y", "Political ad · ..." when political) always visible, and a "Why this ad?" panel: the summary,
// the targeting the person matched, the auction's main inputs, and two changes ("Hide ads from X", "Turn off
// interest-based ads"). A click on the ad's content is reported with the ad's signed token; so is a like
// (an engagement). Calls go through the same-origin /web/api/ads/* (the server adds the person's credential).
// Loaded after app.js, whose helpers (h, api, say, fmt, now, ago, onAction) it uses; everything from the server is
// written as text. app.js draws an item with window.gfAdCard when its source is "ad".
"use strict";

(() => {
  const ADS = "/web/api/ads/";
  const UNIT = { cpm: "per 1,000 impressions", cpc: "per click", cpe: "per engagement" };
  const PARAM = {
    countries: "Country", languages: "Languages", topics: "Topics of interest", regions: "Region",
    age_bands: "Age band", lookalike_of: "People like the followers of", custom_audience: "The advertiser's own list",
  };
  let serial = 0;
  let settings = null;  // the person's ad settings, as last read or saved

  const money = (x) => Number(x).toFixed(Math.abs(x) > 0 && Math.abs(x) < 0.01 ? 4 : 2);
  const words = (v) => Array.isArray(v) ? v.join(", ") : String(v);
  const sameAdvertiser = (a) => document.querySelectorAll(`.post.ad[data-advertiser="${CSS.escape(a)}"]`);

  async function act(it, action) {
    return api(ADS + "actions", { method: "POST", body: { token: it.ad.token, action } });
  }

  function adCard(it) {
    const ad = it.ad;
    const n = ++serial;
    const whyId = `ad-why-${n}`;
    const when = new Date(it.created_at * 1000);
    const card = h("article", {
      class: "post ad" + (ad.political ? " political" : ""), "data-post": it.post, "data-author": it.author,
      "data-campaign": ad.campaign, "data-advertiser": ad.advertiser, "data-political": String(ad.political),
      "aria-label": `${ad.political ? "Political ad" : "Ad"} from ${ad.advertiser}`,
    });
    const status = h("p", { class: "status", role: "status" });
    const content = h("button", { type: "button", class: "ad-content", "aria-label": `Open the ad from ${ad.advertiser}: ${it.text}`,
      onclick: async () => {
        if (card.dataset.clicked) return;
        try {
          await act(it, "click");
          card.dataset.clicked = "1";
          status.textContent = `Your click on this ad was recorded for ${ad.advertiser}.`;
        } catch (e) { status.textContent = "Could not record the click: " + e.message; }
      } }, h("p", { class: "text", text: it.text }));
    const like = h("button", { type: "button", class: "act", "data-act": "like", "aria-pressed": "false",
      onclick: async (e) => {
        const btn = e.currentTarget;
        const was = btn.getAttribute("aria-pressed") === "true";
        await onAction(btn, "like", it);  // the like itself, as on any post
        if (!was && btn.getAttribute("aria-pressed") === "true" && !card.dataset.engaged) {
          try { await act(it, "engagement"); card.dataset.engaged = "1"; } catch (err) { status.textContent = "Could not record the engagement: " + err.message; }
        }
      } }, "Like");
    card.append(
      h("p", { class: "ad-label", text: ad.label }),
      h("header", {},
        h("span", { class: "handle", text: "@" + it.author_handle }), " ",
        h("time", { datetime: when.toISOString(), title: when.toUTCString(), text: ago(it.created_at) }),
        h("span", { class: "reason", text: ` · promoted by ${ad.advertiser}` })),
      content,
      h("p", { class: "counts" }, h("span", { class: "c-likes", text: plural(it.counts.likes, "like") })),
      h("div", { class: "actions", role: "group", "aria-label": "Actions on this ad" },
        like,
        h("button", { type: "button", class: "why-btn ad-why-btn", "aria-expanded": "false", "aria-controls": whyId,
          onclick: (e) => {
            const btn = e.currentTarget;
            const open = btn.getAttribute("aria-expanded") === "true";
            btn.setAttribute("aria-expanded", String(!open));
            document.getElementById(whyId).hidden = open;
          } }, "Why this ad?")),
      status,
      whyPanel(it, whyId));
    return card;
  }

  function whyPanel(it, id) {
    const ad = it.ad, w = ad.why, a = w.auction;
    const rows = (w.targeting || []).map((t) => h("tr", { "data-param": t.parameter },
      h("th", { scope: "row", text: PARAM[t.parameter] || t.parameter.replaceAll("_", " ") }),
      h("td", { text: words(t.campaign) }), h("td", { class: "you", text: words(t.you) }),
      h("td", { text: t.profiling ? "yes" : "no" })));
    const targeting = rows.length
      ? h("table", { class: "tbl ad-targeting" }, h("caption", { text: "What the advertiser targeted, and what of yours matched" }),
          h("thead", {}, h("tr", {}, ["parameter", "the campaign asked for", "you", "based on profiling"].map((c) => h("th", { scope: "col", text: c })))),
          h("tbody", {}, rows))
      : h("p", { class: "meta ad-untargeted", text: "No targeting: this campaign may be shown to anyone." });
    const unit = UNIT[a.bid_unit] || a.bid_unit;
    const input = (key, label, value) => [h("dt", { text: label }), h("dd", { "data-input": key, text: value })];
    const auction = h("dl", { class: "facts ad-auction" },
      input("bid", "Bid", `${money(a.bid)} ${unit}`),
      input("price", "Price paid", `${money(a.price)} ${unit}, set by ${a.price_set_by}`),
      input("quality", "Quality", `${fmt(a.quality, 2)} (lower when people hide this campaign)`),
      input("p_click", "Predicted chance you click", fmt(a.p_click, 3)),
      input("p_engagement", "Predicted chance you engage", fmt(a.p_engagement, 3)),
      input("score", "Expected value of this place", `${a.score_per_impression.toPrecision(3)} per impression`),
      input("rank", "Rank", `${a.rank} of ${plural(a.bidders, "campaign")} bidding for you`));
    const note = h("p", { class: "status", role: "status" });
    const hide = h("button", { type: "button", class: "ad-hide", onclick: async (e) => {
      const btn = e.currentTarget;  // (an event's currentTarget is null once it is dispatched: keep it)
      btn.disabled = true;
      try {
        await act(it, "hide");
        for (const c of sameAdvertiser(ad.advertiser)) {
          c.classList.add("gone");
          c.querySelector(":scope > .status").textContent = `Hidden: you won't see ads from ${ad.advertiser} again.`;
        }
        rememberHidden(ad.advertiser);
      } catch (err) { btn.disabled = false; note.textContent = "Could not hide: " + err.message; }
    } }, `Hide ads from ${ad.advertiser}`);
    const off = h("button", { type: "button", class: "ad-personalised-off", onclick: async (e) => {
      const btn = e.currentTarget;
      try {
        await saveSettings({ personalised: false });
        btn.disabled = true;
        note.textContent = "Interest-based ads are off: from the next page on you see only ads that use no profiling. "
          + "Turn them back on under Controls, Ads.";
      } catch (err) { note.textContent = "Could not change it: " + err.message; }
    } }, "Turn off interest-based ads");
    if (settings && settings.personalised === false) off.disabled = true;
    return h("section", { class: "why ad-why", id, hidden: true, "aria-label": `Why you see this ad from ${ad.advertiser}` },
      h("p", { class: "ad-summary" }, h("strong", { text: "Why this ad: " }), w.summary),
      h("h4", { text: "Targeting" }), targeting,
      h("h4", { text: "The auction" }), auction,
      h("p", { class: "meta", text: `Predicted chances come from ${w.rates_from}. The highest bid × chance × quality wins; `
        + "the winner pays the least it could have bid and still won." }),
      h("div", { class: "row" }, hide, off),
      note);
  }

  // ------------------------------------------------------------ the ad controls (in the page's Controls)
  async function saveSettings(body) {
    settings = await api(ADS + "settings", { method: "PUT", body });
    renderControls();
    return settings;
  }

  function rememberHidden(advertiser) {
    if (settings && !settings.hidden_advertisers.includes(advertiser)) {
      settings.hidden_advertisers = [...settings.hidden_advertisers, advertiser].sort();
      renderControls();
    }
  }

  function renderControls() {
    const box = document.getElementById("ad-controls");
    if (!box || !settings) return;
    const check = box.querySelector("#ads-personalised");
    check.checked = settings.personalised;
    check.disabled = settings.minor;
    box.querySelector("#ads-minor").hidden = !settings.minor;
    const hidden = settings.hidden_advertisers;
    box.querySelector("#ads-hidden").replaceChildren(...hidden.map((a) => h("li", { class: "chip", "data-advertiser": a }, a,
      h("button", { type: "button", "aria-label": `Show ads from ${a} again`, onclick: async () => {
        try {
          await saveSettings({ hidden_advertisers: settings.hidden_advertisers.filter((x) => x !== a) });
          say("#ads-status", `Ads from ${a} may be shown again.`);
        } catch (e) { say("#ads-status", "Could not save: " + e.message, true); }
      } }, "×"))));
    box.querySelector("#ads-hidden-none").hidden = hidden.length > 0;
    for (const b of document.querySelectorAll(".ad-personalised-off")) b.disabled = !settings.personalised;
  }

  function mountControls() {
    const aside = document.querySelector("aside.controls");
    if (!aside || document.getElementById("ad-controls")) return;
    const check = h("input", { type: "checkbox", id: "ads-personalised", onchange: async (e) => {
      const box = e.currentTarget, on = box.checked;
      try {
        await saveSettings({ personalised: on });
        say("#ads-status", on ? "Interest-based ads are on." : "Interest-based ads are off: only ads that use no profiling.");
      } catch (err) { box.checked = !on; say("#ads-status", "Could not save: " + err.message, true); }
    } });
    const box = h("fieldset", { class: "control ad-controls", id: "ad-controls" },
      h("legend", { text: "Ads" }),
      h("label", { class: "check", for: "ads-personalised" }, check, "Interest-based ads (topics, region, age, lookalikes, lists)"),
      h("p", { class: "meta", id: "ads-minor", hidden: true, text: "You are under 18: ads never use profiling for you." }),
      h("p", { class: "meta", text: "Advertisers you hid:" }),
      h("ul", { class: "chips", id: "ads-hidden", "aria-label": "Advertisers you hid" }),
      h("p", { class: "meta", id: "ads-hidden-none", text: "none" }),
      h("p", { class: "meta" }, h("a", { href: "/ad-library" }, "Ad repository"), " · ", h("a", { href: "/v1/ads/policy" }, "How ads are chosen")),
      h("p", { class: "status", id: "ads-status", role: "status" }));
    aside.insertBefore(box, document.getElementById("controls-status"));
    api(ADS + "settings").then((s) => { settings = s; renderControls(); })
      .catch((e) => say("#ads-status", "Could not load your ad settings: " + e.message, true));
  }

  window.gfAdCard = adCard;
  document.addEventListener("DOMContentLoaded", () => { if (document.body.dataset.user) mountControls(); });
})();
