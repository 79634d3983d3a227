// The demo chat: the SDK against the reference server it is served by.
// Its "backend" is the server's dev endpoint POST /dev/jwt.
import { ValetClient } from "./sdk/index.js";

const $ = (id) => document.getElementById(id);
const baseUrl = location.origin;

// A stable anonymous user per browser, and the convo to come back to.
const sourceKey = localStorage.getItem("valet-demo-user") ?? `demo-${crypto.randomUUID()}`;
localStorage.setItem("valet-demo-user", sourceKey);
$("who").textContent = `you are ${sourceKey}`;

let agentId;
async function fetchJwt() {
  const res = await fetch(`${baseUrl}/dev/jwt`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ source_key: sourceKey }),
  });
  if (!res.ok) throw new Error(`/dev/jwt answered ${res.status}`);
  const body = await res.json();
  agentId = body.agent_id;
  return body.token;
}
await fetchJwt(); // learn the dev agent's id
const valet = new ValetClient({ agentId, fetchJwt, baseUrl, debug: new URLSearchParams(location.search).has("debug") });

let convo;

function showStatus(status) {
  $("status").textContent = status;
  $("status").dataset.status = status;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function render(message) {
  const li = document.createElement("li");
  li.className = message.from;
  const who = message.from === "appuser" ? "You" : (message.participant?.name ?? "Agent");
  const time = new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.innerHTML = `<span class="meta"></span><p></p>`;
  li.querySelector(".meta").textContent = `${who} · ${time}`;
  li.querySelector("p").textContent = message.content;
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

async function open(convoId) {
  convo?.close();
  $("messages").replaceChildren();
  showError("");
  convo = await valet.openConvo({ convoId });
  localStorage.setItem("valet-demo-convo", convoId);
  showStatus(convo.status);
  convo.on("message", ({ message }) => {
    render(message);
    $("typing").hidden = true;
  });
  convo.on("typing", ({ state }) => { $("typing").hidden = state !== "start"; });
  convo.on("turn_done", () => { $("typing").hidden = true; });
  convo.on("convo_state", ({ state, closed_user_message }) => {
    if (closed_user_message) showError(closed_user_message);
    $("who").textContent = `you are ${sourceKey} · conversation ${state}`;
  });
  convo.on("status", ({ status, retry_in_ms }) => {
    showStatus(retry_in_ms ? `${status} in ${(retry_in_ms / 1000).toFixed(1)} s` : status);
  });
  convo.on("error", ({ error, phase }) => showError(`${phase}: ${error.message}`));
  $("text").disabled = $("send").disabled = false;
  $("text").focus();
}

async function startNew() {
  const { convoId } = await valet.startSession();
  await open(convoId);
}

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  try {
    await convo.send(text);
  } catch (err) {
    showError(err.code === "rate_limited" ? `Slow down: try again in ${err.retryAfterSeconds} s` : err.message);
    $("text").value = text;
  }
});
$("new-convo").addEventListener("click", () => startNew().catch((e) => showError(e.message)));

const saved = localStorage.getItem("valet-demo-convo");
(saved ? open(saved) : startNew()).catch(() => startNew()).catch((e) => showError(e.message));
