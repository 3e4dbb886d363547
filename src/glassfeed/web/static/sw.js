// glassfeed service worker (served by the app at /sw.js, scope /): it shows the Web Push messages the notification
// worker sends (glassfeed.notifications.worker: {"delivery", "notifications", "title", "body", "digest"}, decrypted
// by the browser) and opens the page when one is clicked. No caching, no network calls of its own.
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

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const c of open) {
      if (new URL(c.url).origin === self.location.origin && "focus" in c) return c.focus();
    }
    return self.clients.openWindow("/");
  })());
});
