// Minimal SIP text helpers for the synthetic drivers (blast, dialogs) and the echo backend.
// Driver-side only: simple string handling is fine here, the edge under test is what we measure.

const COMPACT = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type' }

export const SDP = 'v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n'
  + 'm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n'
  + 'a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n'

/** Parse enough of a message: first line, status/method, headers as [lowerName, value] in order. */
export function parseSip(buf) {
  const text = buf.toString('latin1')
  let end = text.indexOf('\r\n\r\n')
  if (end < 0) end = text.length
  const lines = text.slice(0, end).split('\r\n')
  const first = lines[0]
  const headers = []
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]
    if ((line[0] === ' ' || line[0] === '\t') && headers.length) { headers[headers.length - 1][1] += ' ' + line.trim(); continue }
    const c = line.indexOf(':')
    if (c < 0) continue
    let name = line.slice(0, c).trim().toLowerCase()
    name = COMPACT[name] ?? name
    headers.push([name, line.slice(c + 1).trim()])
  }
  const isResponse = first.startsWith('SIP/2.0 ')
  return {
    isResponse,
    status: isResponse ? Number(first.slice(8, 11)) : 0,
    method: isResponse ? '' : first.slice(0, first.indexOf(' ')),
    headers,
  }
}

export function header(msg, name) {
  for (const [n, v] of msg.headers) if (n === name) return v
  return null
}

/** All values of a header, splitting comma-separated lists outside <...> and quotes. */
export function headerList(msg, name) {
  const out = []
  for (const [n, v] of msg.headers) {
    if (n !== name) continue
    let depth = 0
    let quoted = false
    let start = 0
    for (let i = 0; i < v.length; i++) {
      const ch = v[i]
      if (ch === '"') quoted = !quoted
      else if (!quoted && ch === '<') depth++
      else if (!quoted && ch === '>') depth--
      else if (!quoted && depth === 0 && ch === ',') { out.push(v.slice(start, i).trim()); start = i + 1 }
    }
    out.push(v.slice(start).trim())
  }
  return out
}

export function cseqMethod(msg) {
  const v = header(msg, 'cseq') ?? ''
  return v.slice(v.indexOf(' ') + 1).trim()
}

export function tagOf(value) {
  const m = /;\s*tag=([^;>\s]+)/i.exec(value ?? '')
  return m ? m[1] : null
}

/** The URI inside <...> (or the bare URI up to the first ';'). */
export function uriOf(nameAddr) {
  const lt = nameAddr.indexOf('<')
  if (lt >= 0) return nameAddr.slice(lt + 1, nameAddr.indexOf('>', lt))
  const semi = nameAddr.indexOf(';')
  return semi < 0 ? nameAddr : nameAddr.slice(0, semi)
}

export function buildInvite({ target, local, callId, branch, fromTag }) {
  return Buffer.from(
    `INVITE sip:bench@${target} SIP/2.0\r\n`
    + `Via: SIP/2.0/UDP ${local};branch=z9hG4bK${branch};rport\r\n`
    + 'Max-Forwards: 70\r\n'
    + `From: "bench" <sip:caller@${local}>;tag=${fromTag}\r\n`
    + `To: <sip:bench@${target}>\r\n`
    + `Call-ID: ${callId}\r\n`
    + 'CSeq: 1 INVITE\r\n'
    + `Contact: <sip:caller@${local}>\r\n`
    + 'User-Agent: sipedge-bench\r\n'
    + 'Content-Type: application/sdp\r\n'
    + `Content-Length: ${SDP.length}\r\n\r\n${SDP}`,
    'latin1',
  )
}

/**
 * What a UAC keeps from a 2xx to send in-dialog requests: Route set = Record-Route reversed,
 * remote target = Contact, the To (with tag).
 */
export function dialogFrom200(msg) {
  return {
    routes: headerList(msg, 'record-route').reverse(),
    remoteTarget: uriOf(header(msg, 'contact') ?? ''),
    to: header(msg, 'to') ?? '',
  }
}

export function buildInDialog(method, cseq, { dialog, local, callId, branch, fromTag }) {
  let routes = ''
  for (const r of dialog.routes) routes += `Route: ${r}\r\n`
  return Buffer.from(
    `${method} ${dialog.remoteTarget} SIP/2.0\r\n`
    + `Via: SIP/2.0/UDP ${local};branch=z9hG4bK${branch};rport\r\n`
    + 'Max-Forwards: 70\r\n'
    + routes
    + `From: "bench" <sip:caller@${local}>;tag=${fromTag}\r\n`
    + `To: ${dialog.to}\r\n`
    + `Call-ID: ${callId}\r\n`
    + `CSeq: ${cseq} ${method}\r\n`
    + 'Content-Length: 0\r\n\r\n',
    'latin1',
  )
}
