import { useState, type FormEvent } from "react";
import { useConvo, type ChatMessage } from "@valet.red/sdk/react";
import { convoOfThisTab, valet } from "./valet";

export function App() {
  const [shown, setShown] = useState(true);
  // Hiding the chat unmounts it: its stream closes (and reopens on show).
  return (
    <>
      <button onClick={() => setShown(!shown)}>{shown ? "Hide chat" : "Show chat"}</button>
      {shown && <Chat />}
    </>
  );
}

function Chat() {
  // `convoOfThisTab` runs once per mount (Strict Mode's double mount too):
  // one convo, not two. Callbacks need no memoizing.
  const { messages, typing, status, role, convoState, error, canSend, cannotSend, send, retry, reopen } = useConvo({
    client: valet,
    convoId: convoOfThisTab,
    onTurnDone: () => {
      if (document.hidden) document.title = "New reply · Valet chat";
    },
  });
  const [text, setText] = useState("");

  function submit(e: FormEvent) {
    e.preventDefault();
    if (!text.trim()) return;
    send(text); // a refused message turns "failed" in the list (the rejection is handled)
    setText("");
  }

  return (
    <main style={{ maxWidth: 640, margin: "0 auto", fontFamily: "system-ui, sans-serif" }}>
      <h1>Valet chat (React)</h1>
      <p>
        <span data-testid="status">{status}</span> · {role ?? "…"} · {convoState ?? "…"}
      </p>
      <ol style={{ listStyle: "none", padding: 0 }}>
        {messages.map((m) => (
          <Bubble key={m.key} message={m} onRetry={() => retry(m.key).catch(() => {})} />
        ))}
      </ol>
      {typing && <p className="typing">{typing.label ?? "The agent is typing…"}</p>}
      {error && <p role="alert">{error.message}</p>}
      {/* Stopped (signed out, the convo gone): try again without a remount. */}
      {cannotSend?.reason === "stopped" && <button onClick={() => reopen()}>Try again</button>}
      {/* Offline or still opening, a message can be sent: it waits and goes once. */}
      <form onSubmit={submit}>
        <input aria-label="Message" value={text} onChange={(e) => setText(e.target.value)} disabled={!canSend} />
        <button disabled={!canSend}>Send</button>
      </form>
    </main>
  );
}

function Bubble({ message: m, onRetry }: { message: ChatMessage; onRetry: () => void }) {
  const who = m.from === "appuser" ? "You" : (m.participant?.name ?? "Agent");
  const time = new Date(m.createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return (
    <li data-from={m.from} data-status={m.status} style={{ opacity: m.status === "pending" ? 0.6 : 1 }}>
      <small>
        {who} · {time}
      </small>
      <p>{m.content}</p>
      {m.status === "failed" && <button onClick={onRetry}>Retry</button>}
    </li>
  );
}
