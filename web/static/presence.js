// Presence of the other party (WS `subscribe_presence` / `presence`): "Online" / "Offline"
// in words next to their name, wherever [data-presence-user] names them.

export function trackPresence(socket, threadIds) {
  if (!threadIds.length) return;
  const subscribe = () =>
    socket.request({ type: "subscribe_presence", thread_ids: threadIds.slice(0, 200) }).catch(() => {});
  socket.on("open", subscribe);
  if (socket.isOpen) subscribe();
  socket.on("presence", (message) => {
    const selector = `[data-presence-user="${CSS.escape(message.user_id)}"]`;
    for (const element of document.querySelectorAll(selector)) {
      element.hidden = false;
      element.dataset.online = String(message.online);
      element.textContent = message.online ? "Online" : "Offline";
    }
  });
  // While our own socket is down we do not know; say nothing rather than something stale.
  socket.on("close", () => {
    for (const element of document.querySelectorAll("[data-presence-user]")) element.hidden = true;
  });
}
