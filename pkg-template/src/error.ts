/**
 * `ValetError`: the `Error` every rejection and SDK `error` event of
 * `@valet.red/sdk` carries. A class, exported as a value from the package
 * root, so `err instanceof ValetError` works; the package registers it with
 * the wasm when it loads, and the wasm makes its errors as its instances.
 *
 * @module
 */
import type { ErrorCode } from "./wasm/valet_wasm.js";

/**
 * An SDK failure: branch on `code`; `status`, `retryAfterSeconds` and
 * `body` say what the server answered.
 */
export class ValetError extends Error {
  /** What kind of failure: branch on this. */
  declare code: ErrorCode;
  /** HTTP status, when the server answered. */
  declare status?: number;
  /** With `rate_limited`: seconds to wait. */
  declare retryAfterSeconds?: number;
  /** The server's answer body (parsed when JSON). */
  declare body?: unknown;
  /** On a failed send: an earlier attempt got no answer, so the server may have stored it. */
  declare maybeStored?: boolean;

  /**
   * An error of the SDK's kind. A `fetchJwt` that rejects with
   * `new ValetError("signed out", { code: "auth" })` tells the SDK that the
   * user is signed out: what asked for the token stops (`openConvo`
   * rejects, an open convo's status turns `stopped`, sends fail) instead of
   * trying again, as it does for any other failure of `fetchJwt`.
   */
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(message, options);
    this.name = "ValetError";
    if (options?.code !== undefined) this.code = options.code;
  }
}

/** A `ValetError` with a code. */
export function valetError(code: ErrorCode, message: string, fields: Partial<Pick<ValetError, "status" | "body">> = {}): ValetError {
  const error = new ValetError(message);
  error.code = code;
  Object.assign(error, fields);
  return error;
}
