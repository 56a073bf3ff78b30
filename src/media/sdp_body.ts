// Where the SDP sits in a SIP body: the whole body for application/sdp, or one part of a
// multipart/mixed (or /alternative, /related) body, found by the boundary parameter (RFC 2046 5.1).
// Replacing it gives the new body and its Content-Length; anything that is not clearly SDP is left
// alone (undefined), so bodies without SDP pass byte for byte.

export interface ContentType {
  /** Lower-cased `type/subtype`. */
  mediaType: string
  /** Parameter names lower-cased, values unquoted. */
  params: Map<string, string>
}

/** Parses a Content-Type value; undefined when it is not `type/subtype *(; param)`. */
export function parseContentType(value: string | undefined): ContentType | undefined {
  if (value === undefined || value.length > 1024) return undefined
  const m = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(.*)$/s.exec(value)
  if (m === null) return undefined
  const params = new Map<string, string>()
  let rest = m[2]!
  const param = /^;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\\r\n]|\\.)*"|[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/s
  while (rest.length > 0) {
    const p = param.exec(rest)
    if (p === null) return undefined
    const raw = p[2]!
    params.set(p[1]!.toLowerCase(), raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/gs, '$1') : raw)
    rest = rest.slice(p[0].length)
  }
  return { mediaType: m[1]!.toLowerCase(), params }
}

export interface SdpLocation {
  /** Byte range of the SDP inside the body. */
  start: number
  end: number
  /** True when the SDP is a part of a multipart body. */
  multipart: boolean
}

const MAX_PARTS = 16
const MAX_DEPTH = 3

/** Finds the (first) SDP in `body` given the message's Content-Type; undefined when there is none. */
export function findSdp(contentType: string | undefined, body: Buffer): SdpLocation | undefined {
  if (body.length === 0) return undefined
  // RFC 3261 20.15: a body without Content-Type is application/sdp... only when it looks like SDP.
  if (contentType === undefined) return startsLikeSdp(body, 0) ? { start: 0, end: body.length, multipart: false } : undefined
  // The common case without the Content-Type parser (and its regexes): exactly `application/sdp`.
  if (contentType.length === 15 && contentType.toLowerCase() === 'application/sdp') return { start: 0, end: body.length, multipart: false }
  const loc = find(parseContentType(contentType), body, 0, body.length, 0)
  return loc
}

function find(ct: ContentType | undefined, body: Buffer, start: number, end: number, depth: number): SdpLocation | undefined {
  if (ct === undefined || end <= start) return undefined
  if (ct.mediaType === 'application/sdp') return { start, end, multipart: depth > 0 }
  if (!ct.mediaType.startsWith('multipart/') || depth >= MAX_DEPTH) return undefined
  const boundary = ct.params.get('boundary')
  // RFC 2046: 1 to 70 characters; refuse anything else rather than guess.
  if (boundary === undefined || boundary.length === 0 || boundary.length > 70) return undefined
  for (const part of parts(body, start, end, boundary)) {
    const inner = find(part.contentType, body, part.start, part.end, depth + 1)
    if (inner !== undefined) return inner
  }
  return undefined
}

interface Part { contentType: ContentType | undefined; start: number; end: number }

/** The parts of a multipart body between `start` and `end` (content ranges, without the CRLF before a delimiter). */
function parts(body: Buffer, start: number, end: number, boundary: string): Part[] {
  const dash = Buffer.from(`--${boundary}`, 'latin1')
  const out: Part[] = []
  // The first delimiter may open the body; later ones are preceded by CRLF (which belongs to them).
  let at = body.subarray(start, end).indexOf(dash)
  if (at < 0) return out
  at += start
  if (at !== start && !(body[at - 2] === 0x0d && body[at - 1] === 0x0a)) return out
  for (;;) {
    let p = at + dash.length
    if (body[p] === 0x2d && body[p + 1] === 0x2d) return out // close delimiter
    // Transport padding up to the end of the delimiter line.
    const eol = body.subarray(p, end).indexOf('\r\n')
    if (eol < 0) return out
    p += eol + 2
    const next = body.subarray(p, end).indexOf(Buffer.concat([Buffer.from('\r\n'), dash]))
    if (next < 0) return out // unterminated part: not trusted
    const partEnd = p + next
    // Headers end at an empty line; a part may have none (then it starts with CRLF).
    let headersEnd: number
    let contentStart: number
    if (body[p] === 0x0d && body[p + 1] === 0x0a) {
      headersEnd = p
      contentStart = p + 2
    } else {
      const blank = body.subarray(p, partEnd).indexOf('\r\n\r\n')
      if (blank < 0) return out
      headersEnd = p + blank
      contentStart = headersEnd + 4
    }
    out.push({ contentType: partContentType(body.toString('latin1', p, headersEnd)), start: contentStart, end: partEnd })
    if (out.length >= MAX_PARTS) return out
    at = partEnd + 2
  }
}

function partContentType(headers: string): ContentType | undefined {
  // Unfold continuation lines, then look for Content-Type (or its compact form c).
  for (const line of headers.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const m = /^(content-type|c)\s*:\s*(.*)$/is.exec(line)
    if (m !== null) return parseContentType(m[2])
  }
  // RFC 2046 5.1: a part without Content-Type is text/plain.
  return undefined
}

function startsLikeSdp(body: Buffer, at: number): boolean {
  return body[at] === 0x76 && body[at + 1] === 0x3d // "v="
}

export interface ReplacedBody {
  body: Buffer
  contentLength: number
  /** Where the old SDP was (in the old body). */
  location: SdpLocation
}

/**
 * Returns `body` with its SDP replaced by `sdp` (multipart framing and other parts kept byte for byte),
 * or undefined when the body has no SDP (the caller then leaves the message untouched).
 */
export function replaceSdp(contentType: string | undefined, body: Buffer, sdp: Buffer): ReplacedBody | undefined {
  const location = findSdp(contentType, body)
  if (location === undefined) return undefined
  const out = location.start === 0 && location.end === body.length
    ? sdp
    : Buffer.concat([body.subarray(0, location.start), sdp, body.subarray(location.end)])
  return { body: out, contentLength: out.length, location }
}

/** The SDP bytes of a body, or undefined. */
export function extractSdp(contentType: string | undefined, body: Buffer): Buffer | undefined {
  const loc = findSdp(contentType, body)
  return loc === undefined ? undefined : body.subarray(loc.start, loc.end)
}
