// The conversation list: initials avatars, the latest message and its time, unread counts,
// latest activity first, and a missed-call card with "Reply". Drawn from the JSON
// GET /api/v1/threads answers (the page embeds the first answer) and redrawn live when a
// call ends, when the page becomes visible again, and every little while.
import { callNoteWords } from "/static/call_words.js";
import { api, currentUser, h, initials, shortTime } from "/static/common.js";

const POLL_MS = 15_000;

function preview(thread, me) {
  const message = thread.last_message;
  if (!message) return { text: "", missed: false, system: false };
  const mine = me.id === thread.seller.id;
  const other = mine ? thread.buyer.display_name : thread.seller.display_name;
  if (message.call) {
    return { ...callNoteWords(message.call, { role: mine ? "seller" : "buyer", other }), system: true };
  }
  const who = message.sender_id === me.id ? "You: " : "";
  return { text: message.kind === "system" ? message.text : `${who}${message.text}`, missed: false, system: message.kind === "system" };
}

function row(thread, me, currentId) {
  const other = me.id === thread.seller.id ? thread.buyer : thread.seller;
  const current = thread.id === currentId;
  const note = preview(thread, me);
  const unread = current ? 0 : thread.unread_count;
  const state = [thread.state !== "open" ? thread.state[0].toUpperCase() + thread.state.slice(1) : null, thread.order_placed ? "Order placed" : null]
    .filter(Boolean)
    .join(" · ");
  const link = h(
    "a",
    { href: `/inbox/threads/${encodeURIComponent(thread.id)}`, "aria-current": current ? "page" : null },
    h("span", { class: "avatar", "aria-hidden": "true" }, initials(other.display_name)),
    h(
      "span",
      { class: "thread-main" },
      h(
        "span",
        { class: "thread-line" },
        h("strong", { class: "thread-name" }, other.display_name),
        thread.last_activity_at ? h("time", { datetime: thread.last_activity_at, class: "thread-time" }, shortTime(thread.last_activity_at)) : null,
      ),
      h("span", { class: "thread-subject" }, thread.subject || "(no subject)"),
      note.text && !note.missed ? h("span", { class: `thread-preview${note.system ? " system" : ""}` }, note.text) : null,
      state ? h("span", { class: "thread-state" }, state) : null,
      h("span", { class: "presence", dataset: { presenceUser: other.id }, hidden: true }),
    ),
    unread
      ? h(
          "span",
          { class: "unread-badge" },
          h("span", { "aria-hidden": "true" }, unread > 99 ? "99+" : String(unread)),
          h("span", { class: "visually-hidden" }, `, ${unread} unread`),
        )
      : null,
  );
  return h(
    "li",
    {
      class: `thread-item${current ? " current" : ""}${unread ? " unread" : ""}`,
      dataset: { threadId: thread.id, threadSubject: thread.subject, otherId: other.id },
    },
    link,
    note.missed
      ? h(
          "p",
          { class: "missed-card" },
          h("span", { class: "missed-text" }, note.text),
          " ",
          h("a", { href: `/inbox/threads/${encodeURIComponent(thread.id)}#composer-text`, class: "button secondary small" }, "Reply"),
        )
      : null,
  );
}

/** Draw the list into #thread-list and keep it fresh; returns { threads(), refresh() }. */
export function installThreadList({ onRedraw = () => {} } = {}) {
  const box = document.getElementById("thread-list");
  if (!box) return null;
  const me = currentUser();
  const currentId = box.dataset.currentThreadId || null;
  let threads = JSON.parse(document.getElementById("inbox-data").textContent).threads;

  function draw() {
    const hadFocus = box.contains(document.activeElement) ? document.activeElement.closest(".thread-item")?.dataset.threadId : null;
    const presence = new Map([...box.querySelectorAll("[data-presence-user]")].map((p) => [p.dataset.presenceUser, p]));
    const empty = box.querySelector("[data-thread-list-empty]");
    empty.hidden = threads.length > 0;
    box.querySelector(".thread-list")?.remove();
    if (threads.length) {
      const list = h("ul", { class: "thread-list", "aria-label": "Conversations" }, threads.map((t) => row(t, me, currentId)));
      // Presence already known stays shown across redraws.
      for (const p of list.querySelectorAll("[data-presence-user]")) {
        const before = presence.get(p.dataset.presenceUser);
        if (before && !before.hidden) {
          p.hidden = false;
          p.dataset.online = before.dataset.online;
          p.textContent = before.textContent;
        }
      }
      box.append(list);
      if (hadFocus) list.querySelector(`[data-thread-id="${CSS.escape(hadFocus)}"] a`)?.focus();
    }
    onRedraw(threads);
  }

  let refreshing = null;
  async function refresh() {
    if (refreshing) return refreshing;
    refreshing = api("GET", "/api/v1/threads")
      .then((answer) => {
        threads = answer.threads;
        draw();
      })
      .catch(() => {
        // The next refresh tries again; a stale list is better than an error here.
      })
      .finally(() => {
        refreshing = null;
      });
    return refreshing;
  }

  draw();
  setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  return { threads: () => threads, refresh };
}
