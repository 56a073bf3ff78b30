/** Header name table: numeric ids, canonical names, compact forms, and byte-level classification. */

export const H = {
  Other: 0, Via: 1, From: 2, To: 3, CallId: 4, CSeq: 5, MaxForwards: 6, Route: 7,
  RecordRoute: 8, Contact: 9, ContentLength: 10, ContentType: 11, Require: 12, ProxyRequire: 13,
  Supported: 14, Allow: 15, Expires: 16, UserAgent: 17, Server: 18, Subject: 19, Event: 20,
  ReferTo: 21, ReferredBy: 22, Accept: 23, ContentEncoding: 24, AllowEvents: 25, Date: 26,
  Authorization: 27, ProxyAuthorization: 28, WWWAuthenticate: 29, ProxyAuthenticate: 30,
  RetryAfter: 31, Timestamp: 32, Unsupported: 33, Warning: 34, SessionExpires: 35, Identity: 36, Reason: 37,
} as const

export type HeaderId = (typeof H)[keyof typeof H]

const CANONICAL: string[] = [
  '', 'Via', 'From', 'To', 'Call-ID', 'CSeq', 'Max-Forwards', 'Route',
  'Record-Route', 'Contact', 'Content-Length', 'Content-Type', 'Require', 'Proxy-Require',
  'Supported', 'Allow', 'Expires', 'User-Agent', 'Server', 'Subject', 'Event',
  'Refer-To', 'Referred-By', 'Accept', 'Content-Encoding', 'Allow-Events', 'Date',
  'Authorization', 'Proxy-Authorization', 'WWW-Authenticate', 'Proxy-Authenticate',
  'Retry-After', 'Timestamp', 'Unsupported', 'Warning', 'Session-Expires', 'Identity', 'Reason',
]

/** Compact forms (RFC 3261 §7.3.3, RFC 3265 o/u, RFC 3515 r, RFC 3892 b, RFC 4028 x, RFC 8224 y). */
const COMPACT: Record<string, number> = {
  i: H.CallId, m: H.Contact, e: H.ContentEncoding, l: H.ContentLength, c: H.ContentType,
  f: H.From, s: H.Subject, k: H.Supported, t: H.To, v: H.Via, o: H.Event, u: H.AllowEvents,
  r: H.ReferTo, b: H.ReferredBy, x: H.SessionExpires, y: H.Identity,
}

/** Compact letters whose long header has no id of its own (a, j, d, n): they stay H.Other. */
const COMPACT_OTHER: Record<string, string> = {
  a: 'Accept-Contact', j: 'Reject-Contact', d: 'Request-Disposition', n: 'Identity-Info',
}

const BY_LOWER_NAME = new Map<string, number>()
for (let id = 1; id < CANONICAL.length; id++) BY_LOWER_NAME.set(CANONICAL[id]!.toLowerCase(), id)
for (const k of Object.keys(COMPACT)) BY_LOWER_NAME.set(k, COMPACT[k]!)

// Exact spellings seen before (canonical names are pre-seeded): skips toLowerCase on the hot path.
const BY_EXACT_NAME = new Map<string, number>()
for (let id = 1; id < CANONICAL.length; id++) BY_EXACT_NAME.set(CANONICAL[id]!, id)

export function headerIdOf(name: string): number {
  const exact = BY_EXACT_NAME.get(name)
  if (exact !== undefined) return exact
  const id = BY_LOWER_NAME.get(name.toLowerCase()) ?? H.Other
  if (BY_EXACT_NAME.size < 1024) BY_EXACT_NAME.set(name, id) // bounded: names may come from callers
  return id
}

export function canonicalHeaderName(id: number): string {
  return CANONICAL[id] ?? ''
}

/** Expands a compact or odd-cased name to its usual spelling (for names without an id, as given). */
export function expandHeaderName(name: string): string {
  const id = headerIdOf(name)
  if (id !== H.Other) return CANONICAL[id]!
  if (name.length === 1) return COMPACT_OTHER[name.toLowerCase()] ?? name
  return name
}

// Byte-level table. A known name is found from (length, first letter, last letter) in one typed-array
// load, then verified byte by byte, case-insensitively (b | 0x20 is exact here because callers only
// pass token bytes, and known names hold only letters and '-'). Slots shared by two names (none
// today) fall back to the per-length list.
const LONGEST = 19
const LETTERS = 32
const BY_LEN: Array<Array<{ bytes: Uint8Array; id: number }>> = []
for (let i = 0; i <= LONGEST; i++) BY_LEN.push([])
const SLOT_ID = new Int8Array((LONGEST + 1) * LETTERS * LETTERS)
const SLOT_BYTES: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(SLOT_ID.length).fill(undefined)
const SHARED = -1
function slotOf(len: number, first: number, last: number): number {
  return (len * LETTERS + (first & 31)) * LETTERS + (last & 31)
}
for (let id = 1; id < CANONICAL.length; id++) {
  const lower = CANONICAL[id]!.toLowerCase()
  const bytes = Uint8Array.from(Buffer.from(lower, 'latin1'))
  BY_LEN[lower.length]!.push({ bytes, id })
  const slot = slotOf(bytes.length, bytes[0]!, bytes[bytes.length - 1]!)
  SLOT_ID[slot] = SLOT_ID[slot] === 0 ? id : SHARED
  SLOT_BYTES[slot] = bytes
}
// Single letters: a direct table by lower-case byte.
const COMPACT_BY_BYTE = new Int8Array(128)
for (const k of Object.keys(COMPACT)) COMPACT_BY_BYTE[k.charCodeAt(0)] = COMPACT[k]!

function classifyByList(buf: Uint8Array, start: number, len: number): number {
  const cands = BY_LEN[len]!
  const first = buf[start]! | 0x20
  for (let k = 0; k < cands.length; k++) {
    const b = cands[k]!.bytes
    if (b[0] !== first) continue
    let i = 1
    while (i < len && (buf[start + i]! | 0x20) === b[i]) i++
    if (i === len) return cands[k]!.id
  }
  return H.Other
}

/** Id of the header name occupying buf[start, end) (token bytes only) — no allocation. */
export function classifyHeaderName(buf: Uint8Array, start: number, end: number): number {
  const len = end - start
  if (len === 1) {
    const c = buf[start]! | 0x20
    return c < 128 ? COMPACT_BY_BYTE[c]! : H.Other
  }
  if (len > LONGEST) return H.Other
  const slot = slotOf(len, buf[start]!, buf[end - 1]!)
  const id = SLOT_ID[slot]!
  if (id === 0) return H.Other
  if (id === SHARED) return classifyByList(buf, start, len)
  const b = SLOT_BYTES[slot]!
  for (let i = 0; i < len; i++) if ((buf[start + i]! | 0x20) !== b[i]) return H.Other
  return id
}

/** Resolves the `nameOrId` argument used across the API. */
export function resolveHeaderId(nameOrId: string | number): number {
  return typeof nameOrId === 'number' ? nameOrId : headerIdOf(nameOrId)
}
