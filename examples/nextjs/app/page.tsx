// A server component: it renders the chat, a client component. The SDK is
// imported while the page is prerendered in Node, and only runs in the browser.
import { Chat } from "./chat";

export default function Page() {
  return (
    <main style={{ maxWidth: 640, margin: "0 auto", fontFamily: "system-ui, sans-serif" }}>
      <h1>Valet chat (Next.js)</h1>
      <Chat />
    </main>
  );
}
