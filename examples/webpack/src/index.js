// The framework-agnostic store, rendered with plain DOM code.
import { ValetClient, createConvoStore } from "@valet.red/sdk";
import { devBackend } from "../../dev-backend.js";

const { agentId, fetchJwt, baseUrl } = devBackend("webpack-example");

const valet = new ValetClient({ agentId, fetchJwt, baseUrl });
const store = createConvoStore(valet.startSession().then(({ convoId }) => valet.openConvo({ convoId })));

const $ = (sel) => document.querySelector(sel);
const bubbles = new Map(); // key -> <li>, so a pending bubble becomes the sent one

function render(state) {
  $("[data-testid=status]").textContent = state.status;
  $("#role").textContent = state.role ?? "…";
  $("#state").textContent = state.convoState ?? "…";
  $("#typing").hidden = !state.typing;
  $("#typing").textContent = state.typing ? (state.typing.label ?? "The agent is typing…") : "";
  $("#error").hidden = !state.error;
  $("#error").textContent = state.error?.message ?? "";
  const list = $("#messages");
  const keys = new Set();
  for (const m of state.messages) {
    keys.add(m.key);
    let li = bubbles.get(m.key);
    if (!li) {
      li = document.createElement("li");
      li.innerHTML = "<small></small><p></p>";
      bubbles.set(m.key, li);
    }
    li.dataset.from = m.from;
    li.dataset.status = m.status;
    li.style.opacity = m.status === "pending" ? "0.6" : "1";
    const who = m.from === "appuser" ? "You" : (m.participant?.name ?? "Agent");
    li.querySelector("small").textContent = `${who} · ${new Date(m.createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
    li.querySelector("p").textContent = m.content;
    list.append(li); // moves it into display order
  }
  for (const [key, li] of bubbles) {
    if (!keys.has(key)) {
      li.remove();
      bubbles.delete(key);
    }
  }
}

store.subscribe(() => render(store.getState()));
render(store.getState());

$("#composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("[aria-label=Message]");
  if (!input.value.trim()) return;
  store.send(input.value).catch(() => {}); // a refused message turns "failed"
  input.value = "";
});
