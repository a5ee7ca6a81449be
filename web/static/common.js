// Shared helpers: CSRF-carrying JSON requests, friendly error text, small DOM builders.
export const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** The signed-in person, from <body data-user-id data-user-role data-user-name>. */
export const currentUser = () => ({
  id: document.body.dataset.userId ?? "",
  role: document.body.dataset.userRole ?? "",
  name: document.body.dataset.userName ?? "",
});

export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw Object.assign(
      new Error("The server could not be reached. Check your connection and try again."),
      { code: "network", status: 0 },
    );
  }
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && !location.pathname.startsWith("/login")) {
    // Signed out (or the session ended) mid-page: the sign-in page says so and comes back.
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) {
    const message = data?.error?.message ?? `The request failed (HTTP ${response.status}).`;
    throw Object.assign(new Error(message), { code: data?.error?.code, status: response.status });
  }
  return data;
}

/** Build an element: h("p", {class: "x", "aria-label": "y"}, "text", child). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** "1:05", "12:30", "1:02:03" */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** "Vera VID" -> "VV", "sam" -> "S": the initials avatar's letters. */
export function initials(name) {
  const words = String(name ?? "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  const letters = words.length === 1 ? [words[0]] : [words[0], words[words.length - 1]];
  return letters.map((w) => [...w][0].toUpperCase()).join("");
}

/** A message time as an inbox shows it: "14:05" today, "Mon 14:05" this week, else "12 Mar". */
export function shortTime(iso, now = new Date()) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const time = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === now.toDateString()) return time;
  const days = (now - when) / 86_400_000;
  if (days >= 0 && days < 6) return `${when.toLocaleDateString(undefined, { weekday: "short" })} ${time}`;
  const sameYear = when.getFullYear() === now.getFullYear();
  return when.toLocaleDateString(undefined, sameYear ? { day: "numeric", month: "short" } : { dateStyle: "medium" });
}

/** Fill every `[data-initials="Name"]` avatar under `root`. */
export function fillInitials(root = document) {
  for (const avatar of root.querySelectorAll("[data-initials]")) {
    avatar.textContent = initials(avatar.dataset.initials);
  }
}

/** Only http(s) addresses are followed; anything else (javascript:, data:) is refused. */
export function safeHttpUrl(value) {
  try {
    const url = new URL(value, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

// Plain form posts (sign out) carry the CSRF token as a header via fetch.
for (const form of document.querySelectorAll("form[data-csrf-form]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await fetch(form.action, { method: "POST", headers: { "X-CSRF-Token": csrfToken() } });
    window.location.assign("/login");
  });
}
