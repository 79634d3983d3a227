// The "app" under test: the lines a chat view shows, from the store's snapshot.
export function chatView(state) {
  const lines = state.messages.map((m) => `${m.from === "appuser" ? "me" : "agent"}: ${m.content}${m.status === "pending" ? " (sending)" : ""}`);
  if (state.typing) lines.push("agent is typing");
  if (!state.canSend) lines.push(`cannot send: ${state.cannotSend.reason}`);
  return lines;
}
