"""Delivery channels for notifications: Web Push (RFC 8030/8291/8292) and signed webhooks.

A self-contained library (it imports nothing else from glassfeed): the outbox worker calls ``webpush.send`` or
``webhook.send`` and acts on the ``DeliveryResult`` (ok / retry later / gone: delete the subscription / failed).
See docs/notifications_delivery.md.
"""

from glassfeed.notifications.delivery import webhook, webpush
from glassfeed.notifications.delivery.result import DeliveryResult
from glassfeed.notifications.delivery.webhook import backoff, sign, verify
from glassfeed.notifications.delivery.webpush import PayloadTooLarge, Subscription, VapidKeys, encrypt

__all__ = [
    "DeliveryResult",
    "webpush",
    "webhook",
    "VapidKeys",
    "Subscription",
    "PayloadTooLarge",
    "encrypt",
    "sign",
    "verify",
    "backoff",
]
