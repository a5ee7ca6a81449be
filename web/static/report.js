// Reporting a call: the dialog of web/templates/_report_dialog.html (reason, details,
// "Send report"), sent to POST /api/v1/calls/{id}/report. Used by the call screen and by
// the thread's call notes; a reported call is always reviewed.
import { api } from "/static/common.js";

const THANKS = "Thanks, your report was sent. A compliance reviewer will look at this call.";

/** Open the report form for `callId`; `onSent(words)` runs once it is stored. */
export function openReport(callId, { onSent = () => {} } = {}) {
  const dialog = document.getElementById("report-dialog");
  if (!dialog) return;
  const form = dialog.querySelector("[data-report-form]");
  const reason = dialog.querySelector("#report-reason");
  const details = dialog.querySelector("#report-details");
  const error = dialog.querySelector("[data-report-error]");
  const send = dialog.querySelector("[data-report-send]");
  const opener = document.activeElement;
  form.reset();
  error.textContent = "";
  let sending = false;

  const close = () => {
    dialog.close();
    form.onsubmit = null;
    opener?.focus?.();
  };
  dialog.querySelector("[data-report-cancel]").onclick = close;
  dialog.oncancel = (event) => {
    event.preventDefault();
    close();
  };
  form.onsubmit = async (event) => {
    event.preventDefault();
    if (sending) return;
    sending = true;
    send.setAttribute("aria-disabled", "true");
    error.textContent = "";
    const text = details.value.trim();
    try {
      await api("POST", `/api/v1/calls/${encodeURIComponent(callId)}/report`, {
        reason: reason.value,
        ...(text ? { details: text } : {}),
      });
    } catch (err) {
      error.textContent = err.message;
      return;
    } finally {
      sending = false;
      send.setAttribute("aria-disabled", "false");
    }
    close();
    onSent(THANKS);
  };
  dialog.showModal();
  reason.focus();
}
