"""The web app: one server-rendered page (Jinja2) plus a small vanilla JS file, served by the API server.

``glassfeed.web.routes.install(app)`` adds ``/`` (the page), ``/static``, ``/web/session``, the same-origin
``/web/api/me/...`` proxy onto the real ``/v1`` routes, and ``/audit`` (the newest simulation report).
"""
