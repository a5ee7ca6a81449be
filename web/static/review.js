// The reviewer console: queue with filters, claim, both recordings side by side under one
// transport (the recordings share the call clock), an event timeline
// whose markers seek, the chat transcript with detector hits, the verdict, the audit trail.
import { api, currentUser, formatDuration, h } from "/static/common.js";

const me = currentUser();
const $ = (id) => document.getElementById(id);
const queueList = $("queue");
const filters = $("queue-filters");
const section = $("review-call");
const playToggle = $("play-toggle");
const seek = $("seek");
const position = $("position");
const timeline = $("timeline");
const cursor = $("timeline-cursor");
const verdictForm = $("verdict-form");

// A video further than this from the shared clock is moved back in step.
const MAX_DRIFT_S = 0.25;
const SYNC_INTERVAL_MS = 200;
const NOT_READY_POLL_MS = 1_500;

// recorder/sampling.py MandatoryReviewReason
const REASON_WORDS = {
  contact_details_in_chat: "Contact details in chat",
  reported_by_participant: "Reported by a participant",
};
const VERDICT_WORDS = {
  clean: "Clean",
  off_platform_contact: "Off-platform contact",
  abusive: "Abusive",
  other: "Other",
};
const END_WORDS = {
  hung_up: "hung up",
  missed: "missed",
  declined: "declined",
  cancelled: "cancelled",
  failed: "failed",
  ineligible: "ended: no longer allowed",
  server_shutdown: "ended by a service restart",
};

let current = null; // { detail, players: [{video, offset, duration, recording}], granted }

// --- queue ---------------------------------------------------------------------------------

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** The call's duration as the thread and the call screen show it (stored at the end). */
function callLength(item) {
  if (!item.ended_at) return "still live";
  return item.duration_seconds === null ? "did not connect" : formatDuration(item.duration_seconds);
}

async function loadQueue() {
  const params = new URLSearchParams();
  const data = new FormData(filters);
  for (const [key, value] of data.entries()) if (value !== "") params.set(key, value);
  $("queue-error").textContent = "";
  $("queue-status").textContent = "Loading the queue...";
  let queue;
  try {
    queue = await api("GET", `/api/v1/review/queue?${params}`);
  } catch (err) {
    $("queue-status").textContent = "";
    $("queue-error").textContent = `The queue could not be loaded: ${err.message}`;
    return;
  }
  queueList.replaceChildren(...queue.calls.map(queueItem));
  const n = queue.calls.length;
  $("queue-status").textContent = n === 0 ? "No calls match these filters." : `${n} call${n === 1 ? "" : "s"}.`;
}

function queueItem(item) {
  const titleId = `q-${item.call_id}`;
  const tags = [];
  for (const reason of item.mandatory_reasons) {
    tags.push(h("span", { class: "tag risk" }, REASON_WORDS[reason] ?? reason.replaceAll("_", " ")));
  }
  if (item.sampled) tags.push(h("span", { class: "tag" }, "Random sample"));
  if (item.claimed_by) {
    tags.push(h("span", { class: "tag" }, item.claimed_by === me.id ? "Claimed by you" : `Claimed by ${item.claimed_by}`));
  }
  if (item.verdict) tags.push(h("span", { class: "tag" }, `Verdict: ${VERDICT_WORDS[item.verdict] ?? item.verdict}`));
  const claim = h("button", { type: "button", "aria-describedby": titleId }, "Claim");
  const open = h("button", { type: "button", class: "secondary", "aria-describedby": titleId }, "Open");
  const error = h("p", { class: "error", role: "alert" });
  claim.addEventListener("click", async () => {
    error.textContent = "";
    try {
      await api("POST", `/api/v1/review/calls/${encodeURIComponent(item.call_id)}/claim`);
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    await openCall(item.call_id);
    loadQueue();
  });
  open.addEventListener("click", () => openCall(item.call_id));
  // "Claim" only while nobody holds the call; the holder opens it ("Claimed by you").
  const claimable = !item.verdict && !item.claimed_by;
  return h(
    "li",
    { class: `queue-item${current?.detail.call_id === item.call_id ? " current" : ""}`, dataset: { callId: item.call_id } },
    h("strong", { id: titleId }, `${item.seller.display_name} called ${item.buyer.display_name}`),
    h("span", { class: "muted" }, `${when(item.created_at)} · ${callLength(item)}${item.end_reason ? ` · ${END_WORDS[item.end_reason] ?? item.end_reason}` : ""}`),
    tags.length ? h("span", { class: "tags" }, tags) : null,
    error,
    h("span", { class: "queue-actions" }, claimable ? claim : null, open),
  );
}

filters.addEventListener("submit", (event) => {
  event.preventDefault();
  loadQueue();
});

// --- one call --------------------------------------------------------------------------------

function nameOf(detail, userId) {
  if (userId === me.id) return me.name;
  if (userId === detail.seller.id) return detail.seller.display_name;
  if (userId === detail.buyer.id) return detail.buyer.display_name;
  return userId ?? "the service";
}

async function openCall(callId) {
  stopPlayback();
  $("review-error").textContent = "";
  let detail;
  try {
    detail = await api("GET", `/api/v1/review/calls/${encodeURIComponent(callId)}`);
  } catch (err) {
    $("review-error").textContent = `This call could not be opened: ${err.message}`;
    section.hidden = false;
    return;
  }
  current = { detail, players: [], granted: false };
  section.hidden = false;
  for (const item of queueList.children) item.classList.toggle("current", item.dataset.callId === callId);
  renderCall(detail);
  $("call-heading").focus();
}

function renderCall(detail) {
  $("call-heading").textContent = `${detail.seller.display_name} (seller) and ${detail.buyer.display_name} (buyer)`;
  const reasons = detail.sampling.mandatory_reasons.map((r) => REASON_WORDS[r] ?? r);
  const why = [
    ...reasons,
    detail.sampling.sampled ? `random sample (rate ${detail.sampling.rate}, draw ${detail.sampling.draw?.toFixed?.(4) ?? "?"})` : null,
  ].filter(Boolean);
  $("call-summary").textContent =
    `Started ${when(detail.created_at)}; ${detail.ended_at ? `ended ${when(detail.ended_at)} (${END_WORDS[detail.end_reason] ?? detail.end_reason ?? "ended"}), ${callLength(detail)} connected` : "still live"}.` +
    (why.length ? ` In the queue because: ${why.join("; ")}.` : "") +
    (detail.interrupted ? " The service stopped during this call; the recordings end where it stopped." : "");
  renderPlayers(detail);
  renderTimeline(detail);
  renderTranscript(detail);
  renderVerdict(detail);
  renderAudit(detail.audit, detail);
}

// --- players ---------------------------------------------------------------------------------

function renderPlayers(detail) {
  const box = $("players");
  box.replaceChildren();
  current.players = [];
  const order = [detail.seller.id, detail.buyer.id];
  const recordings = [...detail.recordings].sort(
    (a, b) => order.indexOf(a.participant_id) - order.indexOf(b.participant_id),
  );
  const notReady = [];
  for (const recording of recordings) {
    const who = nameOf(detail, recording.participant_id);
    const role = recording.participant_id === detail.seller.id ? "seller" : "buyer";
    const label = `${who} (${role})`;
    const video = h("video", { preload: "metadata", playsinline: true, "aria-label": `Recording of ${label}` });
    const note = h("p", { class: "muted" });
    if (recording.state === "deleted") note.textContent = `Deleted: ${recording.deleted_reason ?? "no reason given"}.`;
    else if (recording.state === "recording") {
      note.textContent = "Still being finalised...";
      notReady.push(recording.id);
    } else if (recording.state === "pending_upload") {
      // Finalised, but the storage refused it so far; the service keeps retrying.
      note.textContent = "Waiting for storage: the recording is uploaded as soon as storage answers.";
      notReady.push(recording.id);
    } else if (recording.state === "interrupted") note.textContent = "Interrupted: the recording stops where the service stopped.";
    box.append(h("figure", { class: "player" }, video, h("figcaption", {}, label), note));
    if (recording.state === "finalised" || recording.state === "interrupted") {
      current.players.push({
        video,
        recording,
        offset: recording.start_offset ?? 0,
        duration: recording.duration ?? 0,
      });
      video.addEventListener("loadedmetadata", updateLength);
    }
  }
  if (!recordings.length) box.append(h("p", {}, "This call has no recordings."));
  $("recordings-status").textContent = notReady.length
    ? "A recording is still being finalised; it appears here when ready."
    : "";
  if (notReady.length) {
    const callId = detail.call_id;
    setTimeout(async () => {
      if (current?.detail.call_id !== callId || current.granted) return;
      try {
        const fresh = await api("GET", `/api/v1/review/calls/${encodeURIComponent(callId)}`);
        if (current?.detail.call_id === callId && !current.granted) {
          current.detail = fresh;
          renderPlayers(fresh);
          renderAudit(fresh.audit, fresh);
        }
      } catch {
        // Try again with the next render.
      }
    }, NOT_READY_POLL_MS);
  }
  const playable = current.players.length > 0;
  playToggle.setAttribute("aria-disabled", String(!playable));
  seek.disabled = !playable;
  updateLength();
}

// The recorder writes each file's timestamps on the call's shared clock (recorder/finalise.py):
// a file starts at its `start_offset`, and the media element's currentTime *is* the call
// clock. One transport therefore sets the same time on both players.
function playerEnd(p) {
  return Number.isFinite(p.video.duration) && p.video.duration > 0
    ? p.video.duration
    : p.offset + (p.duration || 0);
}

/** Length of the shared timeline: the latest end of any recording. */
function totalLength() {
  if (!current) return 0;
  return Math.max(0, ...current.players.map(playerEnd));
}

function updateLength() {
  const total = totalLength();
  seek.max = String(total);
  renderPosition();
  positionMarkers();
}

// The shared clock: position `clock.base` at wall time `clock.wall`, advancing while playing.
const clock = { base: 0, wall: 0, playing: false, timer: null };

function now() {
  return clock.playing ? clock.base + (performance.now() - clock.wall) / 1000 : clock.base;
}

function renderPosition() {
  const t = Math.min(now(), totalLength());
  const total = totalLength();
  seek.value = String(t);
  const text = `${formatDuration(t)} / ${formatDuration(total)}`;
  position.textContent = text;
  seek.setAttribute("aria-valuetext", `${formatDuration(t)} of ${formatDuration(total)}`);
  cursor.style.left = `calc(12px + ${total > 0 ? t / total : 0} * (100% - 24px))`;
}

/** Grant replay of every recording once (each grant is audited), then set the sources. */
async function ensureSources() {
  if (current.granted) return true;
  $("review-error").textContent = "";
  try {
    const grants = await Promise.all(
      current.players.map((p) =>
        api("POST", `/api/v1/review/recordings/${encodeURIComponent(p.recording.id)}/replay`),
      ),
    );
    const loaded = current.players.map(
      (p, i) =>
        new Promise((resolve) => {
          p.video.addEventListener("loadedmetadata", resolve, { once: true });
          p.video.addEventListener("error", resolve, { once: true });
          p.video.src = grants[i].media_url;
        }),
    );
    current.granted = true;
    await Promise.all(loaded);
  } catch (err) {
    $("review-error").textContent = `The recordings could not be opened: ${err.message}`;
    return false;
  }
  const broken = current.players.filter((p) => p.video.error);
  if (broken.length) {
    $("review-error").textContent = "A recording could not be played by this browser; the file may be damaged.";
  }
  refreshAudit();
  updateLength();
  return true;
}

function syncVideos(force = false) {
  const t = now();
  for (const p of current?.players ?? []) {
    if (t < p.offset || t >= playerEnd(p)) {
      // Before this person's recording starts (or after it ends): hold its first frame.
      if (!p.video.paused) p.video.pause();
      if (t < p.offset && Math.abs(p.video.currentTime - p.offset) > 0.05) {
        p.video.currentTime = p.offset;
      }
      continue;
    }
    if (force || Math.abs(p.video.currentTime - t) > MAX_DRIFT_S) p.video.currentTime = t;
    if (clock.playing && p.video.paused) p.video.play().catch(() => {});
    if (!clock.playing && !p.video.paused) p.video.pause();
  }
  renderPosition();
  if (clock.playing && t >= totalLength()) pause();
}

async function play() {
  if (!current?.players.length) return;
  if (!(await ensureSources())) return;
  if (now() >= totalLength()) clock.base = 0;
  clock.wall = performance.now();
  clock.playing = true;
  playToggle.textContent = "Pause";
  syncVideos(true);
  clearInterval(clock.timer);
  clock.timer = setInterval(() => syncVideos(), SYNC_INTERVAL_MS);
}

function pause() {
  clock.base = now();
  clock.playing = false;
  clearInterval(clock.timer);
  playToggle.textContent = "Play";
  for (const p of current?.players ?? []) p.video.pause();
  renderPosition();
}

function stopPlayback() {
  pause();
  clock.base = 0;
}

async function seekTo(t) {
  if (!current?.players.length) return;
  if (!(await ensureSources())) return;
  clock.base = Math.max(0, Math.min(t, totalLength()));
  clock.wall = performance.now();
  syncVideos(true);
}

playToggle.addEventListener("click", () => (clock.playing ? pause() : play()));
seek.addEventListener("input", () => seekTo(Number(seek.value)));

// --- timeline --------------------------------------------------------------------------------

function eventWords(event, detail) {
  const who = nameOf(detail, event.user_id);
  const d = event.data ?? {};
  switch (event.kind) {
    case "joined":
      return `${who} joined`;
    case "left":
      return `${who} left${d.detail ? ` (${END_WORDS[d.detail] ?? d.detail})` : ""}`;
    case "muted":
      return `${who} muted the microphone`;
    case "unmuted":
      return `${who} unmuted the microphone`;
    case "camera_off":
      return `${who} turned the camera off`;
    case "camera_on":
      return `${who} turned the camera on`;
    case "reconnecting":
      return `${who} lost the connection`;
    case "reconnected":
      return `${who} reconnected`;
    case "chat":
      return (d.flags ?? []).includes("contact_details")
        ? `${who} sent a chat message with contact details`
        : `${who} sent a chat message`;
    case "report":
      return `${who} reported the call${d.detail ? ` (${String(d.detail).replaceAll("_", " ")})` : ""}`;
    default:
      return `${who}: ${event.kind.replaceAll("_", " ")}`;
  }
}

function isRisk(event) {
  const d = event.data ?? {};
  return event.kind === "report" || (event.kind === "chat" && (d.flags ?? []).includes("contact_details"));
}

function renderTimeline(detail) {
  for (const marker of timeline.querySelectorAll(".timeline-marker")) marker.remove();
  const list = $("events");
  list.replaceChildren();
  for (const event of detail.events) {
    const words = eventWords(event, detail);
    const offset = event.offset;
    const stamp = offset === null ? "" : formatDuration(Math.max(0, offset));
    if (offset !== null) {
      const marker = h(
        "button",
        {
          type: "button",
          class: `timeline-marker${isRisk(event) ? " risk" : ""}${event.kind === "chat" ? " chat" : ""}`,
          "aria-label": `Jump to ${stamp}: ${words}`,
          title: `${stamp} ${words}`,
          dataset: { offset: String(Math.max(0, offset)), kind: event.kind },
        },
        h("span", { "aria-hidden": "true" }, isRisk(event) ? "!" : ""),
      );
      marker.addEventListener("click", () => seekTo(Math.max(0, offset)));
      timeline.append(marker);
    }
    const item = h("li", {}, offset === null ? words : null);
    if (offset !== null) {
      const jump = h("button", { type: "button" }, `${stamp} ${words}`);
      jump.addEventListener("click", () => seekTo(Math.max(0, offset)));
      item.append(jump);
    }
    list.append(item);
  }
  if (!detail.events.length) list.append(h("li", { class: "muted" }, "No events were recorded."));
  positionMarkers();
}

function positionMarkers() {
  const total = totalLength();
  for (const marker of timeline.querySelectorAll(".timeline-marker")) {
    const offset = Number(marker.dataset.offset);
    const share = total > 0 ? Math.min(offset / total, 1) : 0;
    // Inset by half a marker at each end, so markers at 0 and at the end stay inside.
    marker.style.left = `calc(12px + ${share} * (100% - 24px))`;
  }
}

// --- transcript ------------------------------------------------------------------------------

function highlighted(text, hits) {
  const parts = [];
  let at = 0;
  for (const hit of [...hits].sort((a, b) => a.start - b.start)) {
    if (hit.start < at) continue;
    parts.push(text.slice(at, hit.start));
    parts.push(h("mark", { title: `Detected: ${hit.kind}` }, text.slice(hit.start, hit.end)));
    at = hit.end;
  }
  parts.push(text.slice(at));
  return parts;
}

function renderTranscript(detail) {
  const list = $("transcript");
  list.replaceChildren();
  for (const line of detail.transcript) {
    const hit = line.hits.length > 0 || line.flags.includes("contact_details");
    const stamp = line.offset === null ? "" : formatDuration(Math.max(0, line.offset));
    const jump = line.offset === null ? null : h("button", { type: "button", class: "link-button" }, stamp);
    jump?.addEventListener("click", () => seekTo(Math.max(0, line.offset)));
    list.append(
      h(
        "li",
        { class: hit ? "hit" : "" },
        jump,
        " ",
        h("strong", {}, nameOf(detail, line.sender_id)),
        ": ",
        h("span", { class: "text" }, highlighted(line.text, line.hits)),
        hit ? h("span", { class: "flag", role: "note" }, " Contact details detected") : null,
      ),
    );
  }
  if (!detail.transcript.length) list.append(h("li", { class: "muted" }, "Nobody wrote in the chat."));
}

// --- verdict ---------------------------------------------------------------------------------

const VIOLATIONS = new Set(["off_platform_contact", "abusive"]);

function renderVerdict(detail) {
  const review = detail.review;
  verdictForm.reset();
  $("verdict-error").textContent = "";
  const options = $("subject-options");
  options.replaceChildren(
    ...[detail.seller, detail.buyer].map((person) =>
      h("label", {}, h("input", { type: "radio", name: "subject", value: person.id }), ` ${person.display_name} (${person.id === detail.seller.id ? "seller" : "buyer"})`),
    ),
  );
  $("subject-fieldset").hidden = true;
  const done = review.verdict !== null;
  for (const control of verdictForm.elements) control.disabled = done;
  if (done) {
    const words = VERDICT_WORDS[review.verdict] ?? review.verdict;
    $("verdict-status").textContent = `Verdict recorded: ${words}.${review.notes ? ` Notes: ${review.notes}` : ""}`;
  } else if (review.claimed_by === me.id) {
    $("verdict-status").textContent = "You hold the claim on this call.";
  } else if (review.claimed_by) {
    $("verdict-status").textContent = `${review.claimed_by} is reviewing this call.`;
  } else {
    $("verdict-status").textContent = "Claim this call in the queue to record a verdict.";
  }
}

verdictForm.addEventListener("change", () => {
  const verdict = new FormData(verdictForm).get("verdict");
  $("subject-fieldset").hidden = !VIOLATIONS.has(verdict);
});

verdictForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  const data = new FormData(verdictForm);
  const verdict = data.get("verdict");
  const error = $("verdict-error");
  error.textContent = "";
  if (!verdict) {
    error.textContent = "Choose a verdict first.";
    return;
  }
  const body = { verdict, notes: String(data.get("notes") ?? "") };
  if (VIOLATIONS.has(verdict)) {
    const subject = data.get("subject");
    if (!subject) {
      error.textContent = "Say which participant broke the rules.";
      return;
    }
    body.subject_user_id = subject;
  }
  try {
    await api("POST", `/api/v1/review/calls/${encodeURIComponent(current.detail.call_id)}/verdict`, body);
  } catch (err) {
    error.textContent = err.message;
    return;
  }
  const fresh = await api("GET", `/api/v1/review/calls/${encodeURIComponent(current.detail.call_id)}`);
  current.detail = fresh;
  renderVerdict(fresh);
  renderAudit(fresh.audit, fresh);
  loadQueue();
});

// --- audit -----------------------------------------------------------------------------------

function auditWords(entry, detail) {
  const who = entry.actor_id ? nameOf(detail, entry.actor_id) : "The service";
  const recording = detail.recordings.find((r) => r.id === entry.target_id);
  const whose = recording ? `the recording of ${nameOf(detail, recording.participant_id)}` : "the call";
  switch (entry.action) {
    case "recording.replay":
      return `${who} replayed ${whose}`;
    case "review.claim":
      return `${who} claimed the call for review`;
    case "review.verdict":
      return `${who} recorded the verdict: ${VERDICT_WORDS[entry.details.verdict] ?? entry.details.verdict}`;
    case "recording.delete":
      return `${who} deleted ${whose} (${entry.details.reason ?? "no reason"})`;
    case "recording.release":
      return `${who} released the hold on ${whose}`;
    default:
      return `${who}: ${entry.action} (${entry.target_type} ${entry.target_id})`;
  }
}

function renderAudit(entries, detail) {
  const list = $("audit");
  list.replaceChildren(
    ...entries.map((entry) =>
      h("li", { dataset: { action: entry.action } }, h("time", { datetime: entry.at }, when(entry.at)), " — ", auditWords(entry, detail)),
    ),
  );
  if (!entries.length) list.append(h("li", { class: "muted" }, "Nothing recorded yet."));
}

async function refreshAudit() {
  if (!current) return;
  try {
    const fresh = await api("GET", `/api/v1/review/calls/${encodeURIComponent(current.detail.call_id)}`);
    if (fresh.call_id === current.detail.call_id) renderAudit(fresh.audit, fresh);
  } catch {
    // The audit list refreshes again after the next action.
  }
}

// For diagnostics (and the browser tests): where each player is on the shared clock.
window.inboxcall = {
  ...(window.inboxcall ?? {}),
  review: {
    clock: () => now(),
    players: () =>
      (current?.players ?? []).map((p) => ({
        offset: p.offset,
        time: p.video.currentTime,
        paused: p.video.paused,
        end: playerEnd(p),
      })),
  },
};

loadQueue();
