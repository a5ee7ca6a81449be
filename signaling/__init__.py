"""Call signalling: eligibility rules, call state, WebSocket vocabulary and the media bridge.

A library: it never imports ``server`` or ``recorder``.
"""
