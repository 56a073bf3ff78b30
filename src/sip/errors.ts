/**
 * The one error type the message core throws. `status` is the SIP response a server would answer
 * with (400 malformed, 413/513 too large, 416 bad URI scheme, 420 bad extension, 483 hops, 505 version).
 */
export class SipParseError extends Error {
  readonly status: number
  constructor(message: string, status = 400) {
    super(message)
    this.name = 'SipParseError'
    this.status = status
  }
}
