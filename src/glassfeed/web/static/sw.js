// glassfeed service worker (served by the app at /sw.js, scope /): it shows the Web Push messages the notification
// worker sends (glassfeed.notifications.worker: {"delivery", "notifications", "title", "body", "digest"}, decrypted
// by the browser) and, when one is clicked, opens the page at /?n=<notification ids> (the page then sends the
// notification_open events). No caching, no network calls of its own.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  if (event.data) {
    try { data = event.data.json(); } catch { data = { body: event.data.text() }; }
  }
  const title = typeof data.title === "string" && data.title ? data.title : "glassfeed";
  const body = typeof data.body === "string" && data.body ? data.body : "New notifications";
  event.waitUntil(self.registration.showNotification(title, {
    body,
    tag: typeof data.delivery === "string" ? data.delivery : "glassfeed",  // a delivery sent twice shows once
    data: { notifications: Array.isArray(data.notifications) ? data.notifications : [] },
  }));
});

// The page a click opens: /?n=<ids> names the notifications the message was about (a digest names several); the
// page sends their notification_open events once and takes the parameter off its URL (notifications.js).
function pageFor(ids) {
  const ok = (Array.isArray(ids) ? ids : []).filter((i) => Number.isSafeInteger(i) && i > 0).slice(0, 50);
  return ok.length ? "/?n=" + ok.join(",") : "/";
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = pageFor((event.notification.data || {}).notifications);
  event.waitUntil((async () => {
    // a page of this site this worker controls: bring it forward and load the URL in it; otherwise a new window
    const open = await self.clients.matchAll({ type: "window" });
    const c = open.find((w) => new URL(w.url).origin === self.location.origin && "focus" in w);
    if (c) {
      try {
        await c.focus();
        if (await c.navigate(url)) return;
      } catch { /* not navigable from here: open a window instead */ }
    }
    await self.clients.openWindow(url);
  })());
});
