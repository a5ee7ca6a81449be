// The inbox page: the conversation list (live), presence next to each conversation, and
// the buyer's incoming calls (answered on this page).
import { currentUser } from "/static/common.js";
import { trackPresence } from "/static/presence.js";
import { installRinging } from "/static/ring.js";
import { installThreadList } from "/static/thread_list.js";
import { pageSocket } from "/static/ws.js";

const socket = pageSocket();
const list = installThreadList();
trackPresence(
  socket,
  list.threads().map((t) => t.id),
);
// A call that ends leaves a note in its thread (missed, declined, how long it lasted).
socket.on("call_state", (message) => {
  if (message.state === "ended") list.refresh();
});
if (currentUser().role === "buyer") {
  const subjectOf = (threadId) => list.threads().find((t) => t.id === threadId)?.subject ?? "";
  installRinging(socket, {
    subjectOf,
    onCallClosed: (threadId) => window.location.assign(`/inbox/threads/${encodeURIComponent(threadId)}`),
  });
}
