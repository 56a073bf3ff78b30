/** Builders for messages the proxy originates: responses, CANCEL, ACK for non-2xx, OPTIONS probes. */
import { randomBytes } from 'node:crypto'
import type { SipMessage } from './message.js'
import { H, canonicalHeaderName } from './headers.js'
import { SipParseError } from './errors.js'
import { writeUtf8 } from './bytes.js'

const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  199: 'Early Dialog Terminated', 200: 'OK', 202: 'Accepted', 204: 'No Notification',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily', 305: 'Use Proxy', 380: 'Alternative Service',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  410: 'Gone', 412: 'Conditional Request Failed', 413: 'Request Entity Too Large', 414: 'Request-URI Too Long',
  415: 'Unsupported Media Type', 416: 'Unsupported URI Scheme', 417: 'Unknown Resource-Priority',
  420: 'Bad Extension', 421: 'Extension Required', 422: 'Session Interval Too Small', 423: 'Interval Too Brief',
  428: 'Use Identity Header', 429: 'Provide Referrer Identity', 433: 'Anonymity Disallowed',
  436: 'Bad Identity-Info', 437: 'Unsupported Certificate', 438: 'Invalid Identity Header',
  439: 'First Hop Lacks Outbound Support', 470: 'Consent Needed',
  480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected',
  483: 'Too Many Hops', 484: 'Address Incomplete', 485: 'Ambiguous', 486: 'Busy Here', 487: 'Request Terminated',
  488: 'Not Acceptable Here', 489: 'Bad Event', 491: 'Request Pending', 493: 'Undecipherable',
  494: 'Security Agreement Required',
  500: 'Server Internal Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Server Time-out', 505: 'Version Not Supported', 513: 'Message Too Large', 555: 'Push Notification Service Not Supported',
  580: 'Precondition Failure',
  600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere', 606: 'Not Acceptable', 607: 'Unwanted',
  608: 'Rejected',
}

export const reasonPhrase = (status: number): string => {
  const r = REASONS[status]
  if (r !== undefined) return r
  if (status >= 100 && status < 200) return 'Trying'
  if (status >= 200 && status < 300) return 'OK'
  if (status >= 300 && status < 400) return 'Redirection'
  if (status >= 400 && status < 500) return 'Client Error'
  if (status >= 500 && status < 600) return 'Server Error'
  return 'Global Failure'
}

// Unique tokens: a random per-process prefix plus a counter; unpredictable enough for
// branch/tag uniqueness without crypto per call (RFC 3261 §8.1.1.7 needs uniqueness, not secrecy).
let PREFIX = randomBytes(6).toString('base64url')

/**
 * Worker processes put their number in every token they make (`w3~` + random): a response carries the
 * branch of the worker that sent the request, so whichever worker the kernel hands it to can tell whose
 * it is. base64url has no `~`, and the rest of a branch (its loop hash, base 36) has none either.
 */
export function setWorkerTokens(worker: number): void {
  PREFIX = `w${worker}~` + randomBytes(6).toString('base64url')
}

/** The worker named by a branch made under setWorkerTokens, or -1 (another process's branch, or none). */
export function workerOfBranch(branch: string): number {
  const tilde = branch.indexOf('~')
  if (tilde < 2) return -1
  let n = 0
  let i = tilde - 1
  for (let scale = 1; i >= 0; i--, scale *= 10) {
    const c = branch.charCodeAt(i)
    if (c === 119 /* w */) break
    if (c < 48 || c > 57) return -1
    n += (c - 48) * scale
  }
  return i >= 0 && i < tilde - 1 ? n : -1
}
let counter = Math.floor(Math.random() * 0x7fffffff)
function nextToken(): string {
  counter = (counter + 1) % 0x7fffffffffff
  return PREFIX + counter.toString(36)
}
export function newBranch(): string { return 'z9hG4bK' + nextToken() }
export function newTag(): string { return nextToken() }
export function newCallId(host?: string): string {
  return host === undefined || host === '' ? nextToken() : nextToken() + '@' + host
}

function line(name: string, value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 0x0d || c === 0x0a) throw new SipParseError(`line break in value of ${name}`, 400)
  }
  return name + ': ' + value + '\r\n'
}

function copyAll(msg: SipMessage, id: number): string {
  let s = ''
  const name = canonicalHeaderName(id)
  for (let i = msg.indexOf(id); i >= 0; i = msg.indexOf(id, i + 1)) s += name + ': ' + msg.headerValue(i) + '\r\n'
  return s
}

function copyFirst(msg: SipMessage, id: number): string {
  const i = msg.indexOf(id)
  return i < 0 ? '' : canonicalHeaderName(id) + ': ' + msg.headerValue(i) + '\r\n'
}

function finish(head: string, body?: Buffer | string): Buffer {
  const b = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  const len = b === undefined ? 0 : b.length
  const h = head + 'Content-Length: ' + len + '\r\n\r\n'
  const hl = Buffer.byteLength(h, 'utf8')
  const out = Buffer.allocUnsafe(hl + len)
  writeUtf8(out, h, 0)
  if (b !== undefined) b.copy(out, hl)
  return out
}

/** Response to `req` (RFC 3261 §8.2.6): Via, From, To, Call-ID, CSeq copied; To tag added when given and absent. */
export function buildResponse(req: SipMessage, status: number, reason?: string,
  opts?: { toTag?: string; headers?: Array<[string, string]>; body?: Buffer | string; contentType?: string }): Buffer {
  if (!Number.isInteger(status) || status < 100 || status > 699) throw new RangeError('status must be 100..699')
  let head = 'SIP/2.0 ' + status + ' ' + (reason ?? reasonPhrase(status)) + '\r\n'
  head += copyAll(req, H.Via)
  head += copyFirst(req, H.From)
  const ti = req.indexOf(H.To)
  if (ti >= 0) {
    let to = req.headerValue(ti)
    if (opts?.toTag !== undefined && status > 100 && req.toTag === undefined) to += ';tag=' + opts.toTag
    head += line('To', to)
  }
  head += copyFirst(req, H.CallId)
  head += copyFirst(req, H.CSeq)
  if (opts?.headers) for (const [n, v] of opts.headers) head += line(n, v)
  if (opts?.body !== undefined) head += line('Content-Type', opts.contentType ?? 'application/sdp')
  return finish(head, opts?.body)
}

/**
 * CANCEL for an INVITE as sent on one branch (§9.1): same R-URI, top Via, Route, From, To, Call-ID, CSeq number;
 * `reasons`: Reason header values to carry (RFC 3326), e.g. those of the CANCEL a proxy received.
 */
export function buildCancel(invite: SipMessage, reasons?: readonly string[]): Buffer {
  let extra = ''
  if (reasons) for (const r of reasons) extra += line('Reason', r)
  return sameBranch('CANCEL', invite, invite, extra)
}

/** ACK for a non-2xx final response (§17.1.1.3): To from the response (its tag), rest from the INVITE. */
export function buildAck(invite: SipMessage, response: SipMessage): Buffer {
  return sameBranch('ACK', invite, response)
}

/** A request on the INVITE's own branch (CANCEL, non-2xx ACK): its top Via only, To taken from `toFrom`. */
function sameBranch(method: string, invite: SipMessage, toFrom: SipMessage, extra = ''): Buffer {
  let head = method + ' ' + invite.requestUri + ' SIP/2.0\r\n'
  head += 'Via: ' + invite.via.raw + '\r\n' // only the top element: the branch concerned
  head += 'Max-Forwards: 70\r\n'
  head += copyAll(invite, H.Route)
  head += copyFirst(invite, H.From)
  head += copyFirst(toFrom, H.To)
  head += copyFirst(invite, H.CallId)
  head += 'CSeq: ' + invite.cseq.seq + ' ' + method + '\r\n'
  return finish(head + extra)
}

/** OPTIONS keep-alive / health probe. */
export function buildOptions(o: { uri: string; viaTransport: string; viaHostport: string; branch: string;
  from: string; callId: string; cseq?: number; maxForwards?: number }): Buffer {
  let head = 'OPTIONS ' + o.uri + ' SIP/2.0\r\n'
  head += line('Via', 'SIP/2.0/' + o.viaTransport.toUpperCase() + ' ' + o.viaHostport + ';branch=' + o.branch + ';rport')
  head += 'Max-Forwards: ' + (o.maxForwards ?? 70) + '\r\n'
  head += line('From', o.from.indexOf(';tag=') >= 0 ? o.from : o.from + ';tag=' + newTag())
  head += line('To', '<' + o.uri + '>')
  head += line('Call-ID', o.callId)
  head += 'CSeq: ' + (o.cseq ?? 1) + ' OPTIONS\r\n'
  return finish(head)
}
