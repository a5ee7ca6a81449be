// The buyer's incoming-call banner (WS `incoming_call`): "Accept" opens the join page,
// where the recording notice is read before joining; "Decline" declines from here.
import { protocolErrorWords } from "/static/call_words.js";
import { h, safeHttpUrl } from "/static/common.js";

export function installRinging(socket, { subjectOf = () => "", onEnded = () => {} } = {}) {
  const region = document.getElementById("incoming-calls");
  if (!region) return;
  const banners = new Map();
  const originalTitle = document.title;

  const remove = (callId) => {
    banners.get(callId)?.remove();
    banners.delete(callId);
    if (!banners.size) document.title = originalTitle;
  };

  socket.on("incoming_call", (message) => {
    if (banners.has(message.call_id)) return;
    const subject = subjectOf(message.thread_id);
    const titleId = `ring-title-${banners.size}-${Date.now()}`;
    const error = h("p", { class: "error", role: "alert" });
    const accept = h("button", { type: "button" }, "Accept");
    const decline = h("button", { type: "button", class: "secondary" }, "Decline");
    accept.addEventListener("click", () => {
      const url = safeHttpUrl(message.join_url);
      if (url) window.location.assign(url);
      else error.textContent = "This call's join link is not valid. Ask the seller to call again.";
    });
    decline.addEventListener("click", async () => {
      decline.setAttribute("aria-disabled", "true");
      try {
        await socket.request({ type: "decline_call", call_id: message.call_id });
        remove(message.call_id);
      } catch (err) {
        if (err.code === "call_not_live") remove(message.call_id);
        else {
          decline.setAttribute("aria-disabled", "false");
          error.textContent = protocolErrorWords(err);
        }
      }
    });
    const banner = h(
      "section",
      { class: "incoming-call", "aria-labelledby": titleId, dataset: { callId: message.call_id } },
      h("h2", { id: titleId }, "Incoming video call"),
      h(
        "p",
        {},
        h("strong", {}, message.caller.display_name),
        subject ? ` is calling you about “${subject}”.` : " is calling you.",
      ),
      h("p", { class: "muted" }, "Calls are recorded. You will read the recording notice before you join."),
      error,
      h("div", { class: "dialog-actions" }, accept, decline),
    );
    banners.set(message.call_id, banner);
    region.append(banner);
    document.title = `Incoming call · ${originalTitle}`;
  });

  socket.on("call_state", (message) => {
    if (!banners.has(message.call_id) || message.state === "ringing") return;
    remove(message.call_id);
    if (message.state === "ended") onEnded(message);
  });
}
