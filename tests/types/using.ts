import { ValetClient } from "@valet.red/sdk";
export async function f(valet: ValetClient) {
  await using convo = await valet.openConvo({ convoId: "c" });
  await convo.send("x");
}
