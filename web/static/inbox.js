// The inbox page: presence next to each conversation, and the buyer's incoming calls.
import { currentUser } from "/static/common.js";
import { trackPresence } from "/static/presence.js";
import { installRinging } from "/static/ring.js";
import { pageSocket } from "/static/ws.js";

const items = [...document.querySelectorAll(".thread-item")];
const socket = pageSocket();
trackPresence(
  socket,
  items.map((item) => item.dataset.threadId),
);
if (currentUser().role === "buyer") {
  const subjects = new Map(items.map((item) => [item.dataset.threadId, item.dataset.threadSubject]));
  installRinging(socket, { subjectOf: (threadId) => subjects.get(threadId) ?? "" });
}
