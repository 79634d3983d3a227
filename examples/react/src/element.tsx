// <valet-chat> in a React 19 app, under Strict Mode: a plain element.
// React 19 sets `client` as a property (the element has one); the element
// keeps one convo and one stream through Strict Mode's double effects and
// closes it when unmounted.
import { StrictMode, useState, type DetailedHTMLProps, type HTMLAttributes } from "react";
import { createRoot } from "react-dom/client";
import type { ValetClient } from "@valet.red/sdk";
import "@valet.red/sdk/element";
import type { ValetChatElement } from "@valet.red/sdk/element";
import { valet } from "./valet";

// The element's JSX type: its attributes and the properties set here.
declare module "react" {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace JSX {
    interface IntrinsicElements {
      "valet-chat": DetailedHTMLProps<HTMLAttributes<ValetChatElement>, ValetChatElement> & { client?: ValetClient; greeting?: string };
    }
  }
}

function App() {
  const [shown, setShown] = useState(true);
  return (
    <>
      <button onClick={() => setShown(!shown)}>{shown ? "Hide chat" : "Show chat"}</button>
      {shown && <valet-chat client={valet} greeting="Hi from a React app!" style={{ height: "30rem" }} />}
    </>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
