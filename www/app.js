// The demo chat: the SDK (no bundler) and its framework-agnostic store,
// against the reference server that serves this page. Its "backend" is the
// server's dev endpoint POST /dev/jwt.
import { ValetClient, convoStateOf, createConvoStore } from "./sdk/index.js";

const $ = (id) => document.getElementById(id);
const baseUrl = location.origin;
const debug = new URLSearchParams(location.search).has("debug");

// A stable anonymous user per browser, and the convo to come back to.
const sourceKey = localStorage.getItem("valet-demo-user") ?? `demo-${crypto.randomUUID()}`;
localStorage.setItem("valet-demo-user", sourceKey);
$("who").textContent = `you are ${sourceKey}`;

async function fetchJwt() {
  const res = await fetch(`${baseUrl}/dev/jwt`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ source_key: sourceKey }),
  });
  if (!res.ok) throw new Error(`/dev/jwt answered ${res.status}`);
  return (await res.json()).token;
}

// The dev agent of the reference server.
const valet = new ValetClient({ agentId: "00000000-0000-4000-8000-00000000a9e1", fetchJwt, baseUrl, debug });

const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const clock = () => new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

let store = null;
let offStore = () => {};
let last = null; // the state last rendered
const bubbles = new Map(); // message key -> <li>: a pending bubble becomes the sent one

// The connection log, oldest first: its numbers follow the order of events.
function logEvent(text) {
  const li = document.createElement("li");
  li.textContent = `${clock()} ${text}`;
  $("events").append(li);
  li.scrollIntoView({ block: "nearest" });
}

/** What a person reads for an error: never a raw "TypeError: Failed to fetch". */
function friendly(error) {
  switch (error.code) {
    case "network":
      return "Can't reach the chat server. Check your connection: what you send goes once it's back.";
    case "timeout":
      return "The chat server is slow to answer. Trying again…";
    case "auth":
      if (error.status === 403) return "That isn't allowed for you right now.";
      return "You are signed out of the chat.";
    case "protocol":
      return "The chat server sent something unexpected. Trying again…";
    case "rate_limited":
      return error.retryAfterSeconds ? `Too many messages: try again in ${error.retryAfterSeconds} s.` : "Too many messages: wait a moment.";
    case "server":
      return "The agent couldn't answer just now. Send your message again.";
    case "closed":
      return "This conversation is closed. Start a new one.";
    case "http":
      if (error.status === 403) return "That isn't allowed for you right now.";
      if (error.status === 404) return "This conversation no longer exists. Start a new one.";
      if (error.status >= 500) return "The chat server had a problem. Trying again…";
      return "The chat server refused that. Try again.";
    default:
      return "Something went wrong. Try again.";
  }
}

/** A line under the header while the connection is not (yet) live. */
function connectionNote(state) {
  switch (state.status) {
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return "Connection lost: reconnecting…";
    case "paused":
      return "Paused while this tab is hidden.";
    case "stopped":
      return "Disconnected.";
    default:
      return "";
  }
}

function renderBubble(m) {
  let li = bubbles.get(m.key);
  if (!li) {
    li = document.createElement("li");
    li.innerHTML = `<span class="meta"></span><p></p>`;
    bubbles.set(m.key, li);
  }
  li.className = m.from;
  li.dataset.status = m.status;
  const who = m.from === "appuser" ? "You" : (m.participant?.name ?? "Agent");
  const meta = m.status === "pending" ? "sending…"
    : m.status === "failed" ? `not sent: ${m.error ? friendly(m.error) : "try again"}`
    : m.status === "streaming" ? "writing…"
    : time(m.createdAt);
  li.querySelector(".meta").textContent = `${who} · ${meta}`;
  li.querySelector("p").textContent = m.content;
  let retry = li.querySelector("button");
  if (m.status === "failed" && !retry) {
    retry = document.createElement("button");
    retry.type = "button";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => store?.retry(m.key).catch(() => {}));
    li.append(retry);
  } else if (m.status !== "failed" && retry) {
    retry.remove();
  }
  return li;
}

/** How the agent's last turn ended, when it asks something of the user. */
function turnNote(turn) {
  if (turn.phase !== "done") return "";
  switch (turn.reason) {
    case "rate_limited":
      return turn.retryAfterSeconds
        ? `The agent asks you to wait ${turn.retryAfterSeconds} s before your next message.`
        : "The agent asks you to wait a moment before your next message.";
    case "blocked":
      return "The agent can't help with that message.";
    case "unavailable":
      return "The agent is unavailable right now. Try again later.";
    default:
      return "";
  }
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? friendly(error) : "";
  $("error").title = error?.message ?? ""; // the details, for who asks
}

function render(state) {
  const prev = last;
  last = state;
  // Badges: conversation state, connection, this tab's role.
  $("convo-state").textContent = state.convoState ?? "…";
  $("convo-state").dataset.state = state.convoState ?? "";
  $("status").textContent = state.status;
  $("status").dataset.status = state.status;
  $("role").textContent = state.role ?? "…";
  $("role").dataset.role = state.role ?? "";
  const note = connectionNote(state);
  $("connection").hidden = !note;
  $("connection").dataset.status = state.status;
  // Reconnects, as they happen.
  if (prev && prev.status !== state.status) {
    if (state.status === "connected" && state.reconnects > prev.reconnects) logEvent(`reconnected (${state.reconnects} so far)`);
    else logEvent(state.status);
  }
  if (prev && prev.role !== state.role && state.role) logEvent(`this tab is now the ${state.role}`);
  // Messages, in order, each once.
  if (!prev || prev.messages !== state.messages) {
    const list = $("messages");
    const keys = new Set(state.messages.map((m) => m.key));
    for (const [key, li] of bubbles) {
      if (!keys.has(key)) {
        li.remove();
        bubbles.delete(key);
      }
    }
    const grew = !prev || state.messages.length > prev.messages.length;
    state.messages.forEach((m, i) => {
      const li = renderBubble(m);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
    });
    if (grew) list.lastElementChild?.scrollIntoView({ block: "end" });
  }
  $("typing").hidden = !state.typing;
  $("typing").textContent = state.typing ? (state.typing.label ?? "Valet Dev Agent is typing…") : "";
  // A closed conversation shows its closed state, not what its last turn said.
  const closed = state.cannotSend?.reason === "closed" || state.cannotSend?.reason === "locked_out";
  const turn = closed ? "" : turnNote(state.turn);
  $("turn-note").hidden = !turn;
  $("turn-note").textContent = turn;
  showError(closed && state.error?.code === "server" ? null : state.error);
  // Stopped (signed out, the convo gone): a way to try again.
  $("connection").replaceChildren(connectionNote(state));
  if (state.status === "stopped") {
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = "Try again";
    again.addEventListener("click", () => store?.reopen());
    $("connection").append(" ", again);
  }
  // A new conversation: a greeting and what to try.
  $("empty").hidden = !(state.convoId && state.messages.length === 0 && state.status === "connected");
  // Escalated or closed: the server's words; closed: no input, and why.
  const closedText = closed ? (state.cannotSend.text ?? "This conversation is closed. Start a new one.") : state.convoStateText;
  $("closed-note").hidden = !closedText;
  $("closed-note").textContent = closedText ?? "";
  $("closed-note").dataset.reason = closed ? state.cannotSend.reason : (state.convoState ?? "");
  const open = !!state.convoId && state.status !== "closed" && state.canSend;
  $("text").disabled = $("send").disabled = !open;
  $("text").placeholder = closed ? "Closed: start a new conversation" : "Message the agent";
}

function show(convoId) {
  offStore();
  store?.close();
  $("messages").replaceChildren();
  bubbles.clear();
  last = null;
  logEvent(`opening conversation ${convoId.slice(0, 8)}…`);
  const opening = valet.openConvo({ convoId });
  // The store's first opening is the one awaited below; "Try again" (its
  // reopen) opens anew. `streaming`: replies show as the agent writes them.
  let first = opening;
  store = createConvoStore(() => {
    const o = first ?? valet.openConvo({ convoId });
    first = null;
    return o;
  }, { convoState: convoStateOf(valet, convoId), streaming: true });
  offStore = store.subscribe(() => render(store.getState()));
  render(store.getState());
  return opening.then(() => {
    localStorage.setItem("valet-demo-convo", convoId);
    $("text").focus();
  });
}

async function startNew() {
  const { convoId } = await valet.startSession();
  await show(convoId);
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !store) return;
  $("text").value = "";
  // Shown at once as "sending…"; a refusal turns it "not sent" with Retry.
  store.send(text).catch(() => {});
});
$("new-convo").addEventListener("click", () => startNew().catch(showError));
$("hints").addEventListener("click", (e) => {
  const text = e.target.closest("button")?.dataset.text;
  if (!text || !store) return;
  if ($("text").disabled) {
    // A closed conversation takes no typing, but the agent still reads /reopen.
    store.send(text).catch(() => {});
    return;
  }
  $("text").value = text;
  $("text").focus();
});

const saved = localStorage.getItem("valet-demo-convo");
(saved ? show(saved) : startNew()).catch(() => startNew()).catch(showError);
