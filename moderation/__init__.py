"""Text moderation: finding contact details and invitations to leave the platform.

A library of its own: ``signaling/``, ``recorder/`` and ``server/`` may import it, and it
imports none of them (an import-contract test checks this).
"""
