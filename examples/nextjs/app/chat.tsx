"use client";

import { useEffect, useState, type FormEvent } from "react";
import type { ValetClient } from "@valet.red/sdk";
import { useConvo } from "@valet.red/sdk/react";
import { valetOfThisPage } from "./valet";
import { preload } from "react-dom";

// The README's startup hint for Next.js ("Startup: the first message
// sooner"): the wasm's URL as the bundler emits it, preloaded by React in
// the prerendered page's head (the API's origin is given at run time here,
// so no preconnect).
const WASM = new URL("@valet.red/sdk/valet_wasm_bg.wasm", import.meta.url).href;

export function Chat() {
  preload(WASM, { as: "fetch", crossOrigin: "anonymous", type: "application/wasm" });
  const [session, setSession] = useState<{ valet: ValetClient; convoId: string } | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  useEffect(() => {
    const { valet, session } = valetOfThisPage();
    session.then((convoId) => setSession({ valet, convoId }), (e: Error) => setFailure(e.message));
  }, []);
  if (failure) return <p role="alert">Could not start a conversation: {failure}</p>;
  if (!session) return <p data-testid="status">connecting</p>;
  return <ChatView valet={session.valet} convoId={session.convoId} />;
}

function ChatView({ valet, convoId }: { valet: ValetClient; convoId: string }) {
  const { messages, typing, status, role, convoState, error, send } = useConvo({ client: valet, convoId });
  const [text, setText] = useState("");

  function submit(e: FormEvent) {
    e.preventDefault();
    if (!text.trim()) return;
    send(text).catch(() => {}); // a refused message turns "failed" in the list
    setText("");
  }

  return (
    <>
      <p>
        <span data-testid="status">{status}</span> · {role ?? "…"} · {convoState ?? "…"}
      </p>
      <ol style={{ listStyle: "none", padding: 0 }}>
        {messages.map((m) => (
          <li key={m.key} data-from={m.from} data-status={m.status} style={{ opacity: m.status === "pending" ? 0.6 : 1 }}>
            <small>
              {m.from === "appuser" ? "You" : (m.participant?.name ?? "Agent")} ·{" "}
              {new Date(m.createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
            </small>
            <p>{m.content}</p>
          </li>
        ))}
      </ol>
      {typing && <p className="typing">{typing.label ?? "The agent is typing…"}</p>}
      {error && <p role="alert">{error.message}</p>}
      <form onSubmit={submit}>
        <input aria-label="Message" value={text} onChange={(e) => setText(e.target.value)} />
        <button>Send</button>
      </form>
    </>
  );
}
