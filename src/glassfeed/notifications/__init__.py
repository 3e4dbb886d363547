"""Notifications: the pull-back lever, built in the open (docs/notifications.md).

candidates from the event stream (``candidates.py``) → a policy written as data (``policies/notifications/``,
``policy.py``) that decides what is pushed, when and why (``schedule.py``) → delivery (``delivery/``: Web Push,
signed webhooks) → an explanation per notification.
"""
