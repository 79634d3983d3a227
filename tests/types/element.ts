// `@valet.red/sdk/element`: the element's properties, methods and strings
// are typed, and `document.createElement("valet-chat")` knows the element.
import { ValetClient } from "@valet.red/sdk";
import { DEFAULT_STRINGS, ValetChatElement, describeError, jwtFromUrl, type ValetChatStrings } from "@valet.red/sdk/element";

export function element() {
  const el: ValetChatElement = document.createElement("valet-chat");
  el.client = new ValetClient({ agentId: "a", fetchJwt: jwtFromUrl("/token") });
  el.fetchJwt = async () => "jwt";
  el.strings = { send: "Envoyer" };
  const all: ValetChatStrings = el.strings;
  const text: string = DEFAULT_STRINGS.send;
  el.greeting = "Hi";
  const id: string | null = el.convoId;
  el.convoId = "c1";
  void el.send("hello").then(() => el.startNew());
  const status: string | undefined = el.store?.getState().status;
  const said: string = describeError(el.store!.getState().error!, all);
  el.addEventListener("statechange", () => {});
  // @ts-expect-error: strings are text
  el.strings = { send: 1 };
  // @ts-expect-error: a client, not its options
  el.client = { agentId: "a" };
  void [text, id, status, said, ValetChatElement];
}
