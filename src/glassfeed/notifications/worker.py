"""The delivery worker: sends the outbox's due pushes (Web Push, signed webhook), in its own process
(``glassfeed notifications worker``), never on the request path.

Each round reads the pending pushes due now, groups them per (person, channel, due time) — a digest is one
message holding several notifications — sends each group, and records every outcome in one transaction per
group: sent (the notification's ``pushed_at`` stamped), a retry later (``backoff``, or the receiver's
``Retry-After`` when longer), given up after ``max_attempts``, or gone (the browser unsubscribed: its subscription
is deleted).

Crash safety: the outbox row is written in the transaction that decided the push, and marked sent only after the
receiver acknowledged it. A worker killed between the two sends that group again when it restarts: at least once,
with the same delivery id (``X-Glassfeed-Delivery``; Web Push's ``Topic``), so receivers drop the second copy.
Nothing acknowledged is lost; tests/test_notification_worker.py kills a worker with SIGKILL mid-run.

With ``[notifications] candidates_from = "log"`` the worker is also the one process that makes notifications from
events: each round first calls its ``tail`` (``NotificationService.tail_log``: the events and posts any process
committed since its cursor, folded into the inboxes and this outbox), then sends what is due.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from glassfeed.notifications.delivery import DeliveryResult, backoff, webhook, webpush
from glassfeed.settings import NotificationSettings
from glassfeed.store import Delivery, Store

log = logging.getLogger(__name__)


def vapid_keys(settings: NotificationSettings, db_path: Path | None) -> webpush.VapidKeys:
    """The deployment's VAPID key: ``[notifications] vapid_key`` (a PEM file), else ``<db>.vapid.pem`` beside the
    store, made (mode 0600) on first use."""
    if settings.vapid_key:
        return webpush.VapidKeys.from_pem(Path(settings.vapid_key).read_bytes())
    if db_path is None:
        raise ValueError("set [notifications] vapid_key: this store has no file to keep the key beside")
    path = Path(str(db_path) + ".vapid.pem")
    if not path.is_file():
        keys = webpush.VapidKeys.generate()
        path.touch(mode=0o600)
        path.write_bytes(keys.to_pem())
    return webpush.VapidKeys.from_pem(path.read_bytes())


@dataclass
class RoundReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    gone: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


class DeliveryWorker:
    """Sends due pushes from one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        settings: NotificationSettings,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        allow_insecure_localhost: bool = False,
        tail: Callable[[], Any] | None = None,
    ) -> None:
        """``tail``: called at the start of every round (``run``), before the due pushes are read: the log tail of
        ``candidates_from = "log"`` (``NotificationService.tail_log``); None: delivery only."""
        self.store = store
        self.tail = tail
        self.settings = settings
        self.clock = clock
        self.client = client or httpx.Client(timeout=settings.send_timeout_s, follow_redirects=False)
        self.insecure_ok = allow_insecure_localhost
        self._vapid: webpush.VapidKeys | None = None

    @property
    def vapid(self) -> webpush.VapidKeys:
        if self._vapid is None:
            self._vapid = vapid_keys(self.settings, self.store.path)
        return self._vapid

    def run_once(self, limit: int = 200) -> RoundReport:
        """Send every group due now (at most ``limit`` pushes)."""
        now = self.clock()
        report = RoundReport()
        groups: dict[tuple[int, str, float], list[Delivery]] = {}
        for d in self.store.due_deliveries(now, limit):
            groups.setdefault((d.user, d.channel, d.due_at), []).append(d)
        for (user, channel, _), items in groups.items():
            result = self._send(user, channel, items)
            report.messages += 1
            self._settle(items, result, report)
        return report

    def run(self, stop: threading.Event) -> None:
        """Rounds (``round``) every ``worker_interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            self.round()
            stop.wait(self.settings.worker_interval_s)

    def round(self) -> tuple[Any, RoundReport]:
        """One round: the tail, if any (a failure is logged, and the next round reads from the same cursor: what a
        failed transaction would have written was not), then every push due now. Returns both reports."""
        tailed = None
        if self.tail is not None:
            try:
                tailed = self.tail()
            except Exception:
                log.exception("the notification log tail failed; the next round retries from its cursor")
        return tailed, self.run_once()

    def _payload(self, user: int, items: list[Delivery]) -> dict[str, Any]:
        rows = self.store.notifications(user, ids=[d.notification for d in items], limit=len(items))
        kinds: dict[str, int] = {}
        for r in rows:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        summary = ", ".join(f"{n} {k.replace('_', ' ')}{'s' if n > 1 else ''}" for k, n in sorted(kinds.items()))
        return {
            "delivery": f"d{min(d.id for d in items)}",
            "notifications": sorted(r.id for r in rows),
            "title": "glassfeed",
            "body": f"New: {summary}" if summary else "New notifications",
            "digest": len(rows) > 1,
        }

    def _send(self, user: int, channel: str, items: list[Delivery]) -> DeliveryResult:
        payload = self._payload(user, items)
        s = self.settings
        if channel == "webhook":
            if not s.webhook_url:
                return DeliveryResult(None, ok=False, retry=False, gone=True, error="no webhook configured")
            return webhook.send(
                s.webhook_url,
                payload,
                s.webhook_secret,
                self.client,
                delivery_id=payload["delivery"],
                allow_insecure_localhost=self.insecure_ok,
            )
        subs = self.store.push_subscriptions(user)
        if not subs:
            return DeliveryResult(None, ok=False, retry=False, gone=True, error="no subscription")
        body = json.dumps(payload, separators=(",", ":")).encode()
        results = []
        for endpoint, p256dh, auth in subs:
            sub = webpush.Subscription(endpoint, p256dh, auth, allow_insecure_localhost=self.insecure_ok)
            r = webpush.send(
                sub, body, self.vapid, subject=s.vapid_subject, ttl=s.push_ttl_s, client=self.client,
                topic=payload["delivery"],
            )  # fmt: skip
            if r.gone:
                with self.store.transaction() as tx:
                    self.store.delete_push_subscription(tx, endpoint)
            results.append(r)
        if any(r.ok for r in results):
            return next(r for r in results if r.ok)
        if any(r.retry for r in results):
            return next(r for r in results if r.retry)
        return results[0]

    def _settle(self, items: list[Delivery], result: DeliveryResult, report: RoundReport) -> None:
        s, now = self.settings, self.clock()
        with self.store.transaction() as tx:
            for d in items:
                attempts = d.attempts + 1
                if result.ok:
                    self.store.settle_delivery(tx, d.id, "sent", attempts, d.due_at, at=now)
                    report.sent += 1
                elif result.gone:
                    self.store.settle_delivery(tx, d.id, "gone", attempts, d.due_at)
                    report.gone += 1
                elif result.retry and attempts < s.max_attempts:
                    wait = max(
                        backoff(d.attempts, base_s=s.retry_base_s, cap_s=s.retry_cap_s), result.retry_after_s or 0
                    )
                    self.store.settle_delivery(tx, d.id, "pending", attempts, now + wait)
                    report.retried += 1
                else:
                    self.store.settle_delivery(tx, d.id, "failed", attempts, d.due_at)
                    report.failed += 1
        if result.error:
            report.errors.append(result.error)
