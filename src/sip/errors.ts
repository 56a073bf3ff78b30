/**
 * The one error type the message core throws. `status` is the SIP response a server would answer
 * with (400 malformed, 413/513 too large, 416 bad URI scheme, 420 bad extension, 483 hops, 505 version).
 */
export class SipParseError extends Error {
  readonly status: number
  /** Header lines the response must carry (e.g. `Unsupported` with a 420, RFC 3261 §16.3 step 5). */
  readonly headers: Array<[string, string]> | undefined
  constructor(message: string, status = 400, headers?: Array<[string, string]>) {
    super(message)
    this.name = 'SipParseError'
    this.status = status
    this.headers = headers
  }
}
