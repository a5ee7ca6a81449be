// The call WebSocket (docs/websocket-protocol.md): one socket per page, requests matched
// to replies by `id`, pushed messages dispatched by `type`, reconnect with backoff.

const CLIENT_PING_INTERVAL_MS = 20_000;
const CLIENT_PONG_TIMEOUT_MS = 10_000;
const BACKOFF_START_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
// A request (including waiting for the socket to open) that takes longer fails in words
// instead of leaving a button spinning forever.
const REQUEST_TIMEOUT_MS = 20_000;
// Close codes after which reconnecting cannot help (docs: "Close codes").
const FINAL_CLOSE_CODES = new Map([
  [4001, "Your session ended. Sign in again to make or take calls."],
  [4003, "Too many inboxcall tabs are open. Close one and reload this page."],
  [1009, "The page sent a message the server could not read. Reload the page."],
]);

export class ProtocolError extends Error {
  constructor(code, message, reasons = []) {
    super(message);
    this.code = code;
    this.reasons = reasons;
  }
}

export class CallSocket extends EventTarget {
  constructor(path = "/api/v1/ws") {
    super();
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.ws = null;
    this.hello = null;
    this.nextId = 1;
    this.pending = new Map();
    this.backoff = BACKOFF_START_MS;
    this.stopped = false;
    this.finalReason = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.readyWaiters = [];
    this.handlers = new Map();
    this.connect();
  }

  /** Subscribe to pushed messages of one `type` (and "open" / "close" lifecycle events). */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type).delete(handler);
  }

  emit(type, payload) {
    for (const handler of this.handlers.get(type) ?? []) {
      try {
        handler(payload);
      } catch (err) {
        // One broken listener must not stop the others; surface it to the console.
        console.error(err);
      }
    }
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN && this.hello !== null;
  }

  /** Resolves once the socket is open and `hello` arrived. */
  ready() {
    if (this.isOpen) return Promise.resolve(this.hello);
    if (this.finalReason) return Promise.reject(new ProtocolError("closed", this.finalReason));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  connect() {
    if (this.stopped) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("message", (event) => this.onFrame(event.data));
    ws.addEventListener("close", (event) => this.onClose(ws, event));
    // "error" is always followed by "close"; the close handler does the work.
  }

  onFrame(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.error("inboxcall: the server sent a frame that is not JSON");
      return;
    }
    if (message.type === "hello") {
      this.hello = message;
      this.backoff = BACKOFF_START_MS;
      this.startHeartbeat();
      for (const waiter of this.readyWaiters.splice(0)) waiter.resolve(message);
      this.emit("open", message);
      return;
    }
    const isReply = message.id !== null && message.id !== undefined && this.pending.has(message.id);
    if (isReply) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.type === "error") {
        const { code, message: text, reasons } = message.error;
        reject(new ProtocolError(code, text, reasons));
      } else {
        resolve(message);
      }
    }
    if (message.type === "pong") {
      clearTimeout(this.pongTimer);
      return;
    }
    // Replies that also carry news (the sender's `chat` copy) reach listeners as well.
    if (!isReply || message.type === "chat") this.emit(message.type, message);
  }

  onClose(ws, event) {
    if (ws !== this.ws) return;
    this.hello = null;
    this.stopHeartbeat();
    for (const { reject } of this.pending.values()) {
      reject(new ProtocolError("connection_lost", "The connection to the server was lost."));
    }
    this.pending.clear();
    const final = FINAL_CLOSE_CODES.get(event.code);
    if (final || this.stopped) {
      this.finalReason = final ?? "closed";
      for (const waiter of this.readyWaiters.splice(0)) {
        waiter.reject(new ProtocolError("closed", this.finalReason));
      }
      this.emit("close", { code: event.code, final: true, reason: this.finalReason });
      return;
    }
    this.emit("close", { code: event.code, final: false });
    const jitter = Math.random() * 0.3 * this.backoff;
    setTimeout(() => this.connect(), this.backoff + jitter);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.isOpen) return;
      this.ws.send(JSON.stringify({ type: "ping" }));
      this.pongTimer = setTimeout(() => this.ws?.close(), CLIENT_PONG_TIMEOUT_MS);
    }, CLIENT_PING_INTERVAL_MS);
  }

  stopHeartbeat() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  /**
   * Send a message that expects a reply; resolves with it or rejects with ProtocolError.
   * `onSent` runs right after the frame is written, so a caller can keep later frames
   * (ICE candidates after their offer) in order.
   */
  async request(message, { onSent, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const timedOut = () =>
      new ProtocolError(
        "timeout",
        "The call service did not answer in time. Check your connection and try again.",
      );
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(timedOut()), timeoutMs);
    });
    try {
      await Promise.race([this.ready(), deadline]);
      const id = this.nextId++;
      const reply = new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.ws.send(JSON.stringify({ ...message, id }));
        onSent?.();
      });
      return await Promise.race([reply, deadline]).finally(() => this.pending.delete(id));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Fire and forget (errors still arrive as `error` pushes with `id: null`). */
  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  close() {
    this.stopped = true;
    this.stopHeartbeat();
    this.ws?.close(1000);
  }
}

let shared = null;
/** The page's one socket (several modules on a page share it). */
export function pageSocket() {
  shared ??= new CallSocket();
  return shared;
}
