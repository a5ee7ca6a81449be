"""Webhooks to the host marketplace (DESIGN.md section 8, "Operations").

* ``outbox``: events are rows of ``webhook_outbox``, added to the session of the change
  they describe, so they commit (or roll back) with it. Nothing else writes events.
* ``events``: the event vocabulary (types and their ``data``), one function per type.
* ``retry``: the pure core that decides, after each attempt, whether an event is
  delivered, retried (when) or failed.
* ``signing``: the ``Inboxcall-Signature`` header.
* ``sender``: the owned task of the serving process that claims due rows (a lease, with
  ``SKIP LOCKED`` on PostgreSQL so several nodes share the outbox), posts them and applies
  the decision.
"""
