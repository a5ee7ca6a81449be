// Shared helpers: CSRF-carrying JSON requests and friendly error text.
export const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = data?.error?.message ?? `Request failed (${response.status}).`;
    throw Object.assign(new Error(message), { code: data?.error?.code, status: response.status });
  }
  return data;
}

// Plain form posts (sign out) carry the CSRF token as a header via fetch.
for (const form of document.querySelectorAll("form[data-csrf-form]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await fetch(form.action, { method: "POST", headers: { "X-CSRF-Token": csrfToken() } });
    window.location.assign("/login");
  });
}
