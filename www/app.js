// The demo: the SDK's `<valet-chat>` element (index.html), against the
// reference server that serves this page. Its token comes from the
// server's GET /dev/jwt, which plays an app's backend: it knows the user by
// a cookie (a new anonymous user per browser). Around the element, what a
// developer wants to see: the convo's state, the connection, this tab's
// role in the browser (one stream for every tab), and a log of reconnects.
const $ = (id) => document.getElementById(id);
const chat = $("chat");
const clock = () => new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

// The connection log, oldest first.
function logEvent(text) {
  const li = document.createElement("li");
  li.textContent = `${clock()} ${text}`;
  $("events").append(li);
}

let last = null;
let shown = null;
chat.addEventListener("statechange", ({ detail: state }) => {
  const prev = last;
  last = state;
  if (state.convoId && state.convoId !== shown) {
    shown = state.convoId;
    logEvent(`showing conversation ${state.convoId.slice(0, 8)}…`);
  }
  $("convo-state").textContent = state.convoState ?? "…";
  $("convo-state").dataset.state = state.convoState ?? "";
  $("status").textContent = state.status;
  $("status").dataset.status = state.status;
  $("role").textContent = state.role ?? "…";
  $("role").dataset.role = state.role ?? "";
  if (prev && prev.convoId === state.convoId && prev.status !== state.status) {
    if (state.status === "connected" && state.reconnects > prev.reconnects) logEvent(`reconnected (${state.reconnects} so far)`);
    else logEvent(state.status);
  }
  if (prev && prev.role !== state.role && state.role) logEvent(`this tab is now the ${state.role}`);
});

$("hints").addEventListener("click", (e) => {
  const text = e.target.closest("button")?.dataset.text;
  // Shown in the chat at once; a refusal shows there too.
  if (text) chat.send(text).catch(() => {});
});
$("new-convo").addEventListener("click", () => chat.startNew().catch(() => {}));
