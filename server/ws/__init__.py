"""The call WebSocket (``/api/v1/ws``): handshake and socket loop, dispatch, connections,
presence. The vocabulary is ``signaling.ws_protocol``; see docs/websocket-protocol.md."""
