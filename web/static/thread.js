import { api } from "/static/common.js";

const composer = document.getElementById("composer");
const list = document.getElementById("messages");

function appendMessage(message, mine) {
  const item = document.createElement("li");
  item.className = `message ${message.kind}${mine ? " mine" : ""}`;
  item.dataset.messageId = message.id;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  item.append(text);
  if (message.flags.includes("contact_details")) {
    const flag = document.createElement("span");
    flag.className = "flag";
    flag.setAttribute("role", "note");
    flag.textContent = "Contact details detected";
    item.append(flag);
  }
  list.append(item);
}

composer?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = composer.querySelector("textarea");
  const error = document.getElementById("composer-error");
  error.textContent = "";
  try {
    const message = await api("POST", `/api/v1/threads/${composer.dataset.threadId}/messages`, {
      text: field.value,
    });
    appendMessage(message, true);
    field.value = "";
    if (message.flags.includes("contact_details")) {
      error.textContent =
        "Sharing phone numbers, e-mail or other contact details breaks the Terms of Service.";
    }
  } catch (err) {
    error.textContent = err.message;
  }
});

const blockToggle = document.getElementById("block-toggle");
blockToggle?.addEventListener("click", async () => {
  const blocked = blockToggle.dataset.blocked === "true";
  await api(blocked ? "DELETE" : "PUT", `/api/v1/threads/${blockToggle.dataset.threadId}/block`);
  window.location.reload();
});
