import { createSocket } from 'node:dgram'
import { H, newBranch, newCallId, newTag, parseMessage, type SipMessage } from '../sip/index.js'

/**
 * A small SIP caller made with sipedge's own message core: it drives `sipedge demo` (full calls:
 * INVITE / 100 / 180 / 200 / ACK / BYE / 200, following Record-Route and the Contact the edge hands out)
 * and checks every header it receives for internal addresses. UDP, with INVITE/BYE retransmission.
 */
export interface CallerOptions {
  /** The edge, as the caller's outbound proxy. */
  edge: { host: string; port: number }
  /** Local address to call from. */
  host: string
  calls: number
  /** Calls started per second. */
  rate: number
  /** How long each call stays up before the BYE. */
  holdMs?: number
  /** Strings that must never appear in a header the caller receives (internal addresses). */
  forbidden?: readonly string[]
  onProgress?(done: number, ok: number, failed: number): void
}

export interface CallerResult {
  completed: number
  failed: number
  /** INVITE -> 200 times, ms. */
  setupMs: number[]
  /** INVITE -> 100 Trying times, ms with µs resolution (the proxy's own reaction time). */
  tryingMs: number[]
  messages: number
  /** Header lines that carried a forbidden string (first 10). */
  leaks: string[]
  failures: string[]
}

interface Call {
  callId: string
  tag: string
  branch: string
  started: number
  /** performance.now() when the INVITE left, for the 100 Trying time. */
  sentHr: number
  gotTrying: boolean
  sentAt: number
  retrans: number
  state: 'inviting' | 'up' | 'byeing' | 'done'
  routes: string[]
  target: string
  remoteTag: string
  bye: Buffer | undefined
  invite: Buffer
  timer: NodeJS.Timeout | undefined
}

export async function runCaller(o: CallerOptions): Promise<CallerResult> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, o.host, () => resolve())
  })
  socket.on('error', () => {})
  const localPort = socket.address().port
  const res: CallerResult = { completed: 0, failed: 0, setupMs: [], tryingMs: [], messages: 0, leaks: [], failures: [] }
  const calls = new Map<string, Call>()
  const hold = o.holdMs ?? 0
  const forbidden = o.forbidden ?? []
  let started = 0
  let finished = 0
  let resolveAll!: () => void
  const allDone = new Promise<void>((r) => (resolveAll = r))

  const send = (buf: Buffer): void => socket.send(buf, o.edge.port, o.edge.host)
  const finish = (c: Call, ok: boolean, why?: string): void => {
    if (c.state === 'done') return
    c.state = 'done'
    if (c.timer) clearTimeout(c.timer)
    calls.delete(c.callId)
    if (ok) res.completed++
    else {
      res.failed++
      if (why && res.failures.length < 10) res.failures.push(`${c.callId}: ${why}`)
    }
    finished++
    o.onProgress?.(finished, res.completed, res.failed)
    if (finished === o.calls) resolveAll()
  }
  const retransmit = (c: Call, buf: Buffer, giveUpMs: number): void => {
    c.retrans = 0
    const step = (): void => {
      c.timer = setTimeout(
        () => {
          if (c.state === 'done') return
          if (Date.now() - c.sentAt > giveUpMs) return finish(c, false, `no answer to ${c.state === 'inviting' ? 'INVITE' : 'BYE'}`)
          send(buf)
          c.retrans++
          step()
        },
        Math.min(500 * 2 ** c.retrans, 4000),
      )
    }
    step()
  }

  const edgeUri = `sip:demo@${o.edge.host}:${o.edge.port}`
  const from = `sip:caller@${o.host}:${localPort}`
  const contact = `<sip:caller@${o.host}:${localPort}>`
  const sdp = `v=0\r\no=caller 1 1 IN IP4 ${o.host}\r\ns=-\r\nc=IN IP4 ${o.host}\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`

  const startCall = (): void => {
    const c: Call = {
      callId: newCallId(o.host),
      tag: newTag(),
      branch: newBranch(),
      started: Date.now(),
      sentHr: 0,
      gotTrying: false,
      sentAt: Date.now(),
      retrans: 0,
      state: 'inviting',
      routes: [],
      target: edgeUri,
      remoteTag: '',
      bye: undefined,
      invite: Buffer.alloc(0),
      timer: undefined,
    }
    c.invite = Buffer.from(
      `INVITE ${edgeUri} SIP/2.0\r\nVia: SIP/2.0/UDP ${o.host}:${localPort};branch=${c.branch};rport\r\nMax-Forwards: 70\r\n` +
        `From: <${from}>;tag=${c.tag}\r\nTo: <${edgeUri}>\r\nCall-ID: ${c.callId}\r\nCSeq: 1 INVITE\r\nContact: ${contact}\r\n` +
        `Content-Type: application/sdp\r\nContent-Length: ${Buffer.byteLength(sdp)}\r\n\r\n${sdp}`,
    )
    calls.set(c.callId, c)
    c.sentHr = performance.now()
    send(c.invite)
    retransmit(c, c.invite, 8000)
  }

  const inDialog = (c: Call, method: string, cseq: number): Buffer => {
    const route = c.routes.length ? `Route: ${c.routes.join(', ')}\r\n` : ''
    return Buffer.from(
      `${method} ${c.target} SIP/2.0\r\nVia: SIP/2.0/UDP ${o.host}:${localPort};branch=${newBranch()};rport\r\n${route}Max-Forwards: 70\r\n` +
        `From: <${from}>;tag=${c.tag}\r\nTo: <${edgeUri}>;tag=${c.remoteTag}\r\nCall-ID: ${c.callId}\r\nCSeq: ${cseq} ${method}\r\n` +
        `Content-Length: 0\r\n\r\n`,
    )
  }

  socket.on('message', (buf) => {
    res.messages++
    let m: SipMessage
    try {
      m = parseMessage(buf)
    } catch {
      return
    }
    if (forbidden.length) checkLeaks(m, forbidden, res.leaks)
    if (m.isRequest) return
    const c = calls.get(m.callId)
    if (!c) return
    const method = m.cseq.method
    if (method === 'INVITE' && c.state === 'inviting') {
      if (m.status === 100 && !c.gotTrying) {
        c.gotTrying = true
        res.tryingMs.push(performance.now() - c.sentHr)
      }
      if (m.status < 200) return
      if (c.timer) clearTimeout(c.timer)
      if (m.status >= 300) {
        // ACK for a non-2xx goes hop by hop with the INVITE's branch (RFC 3261 §17.1.1.3).
        send(Buffer.from(`ACK ${edgeUri} SIP/2.0\r\nVia: SIP/2.0/UDP ${o.host}:${localPort};branch=${c.branch};rport\r\nMax-Forwards: 70\r\nFrom: <${from}>;tag=${c.tag}\r\nTo: ${m.getHeader(H.To)}\r\nCall-ID: ${c.callId}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`))
        return finish(c, false, `INVITE answered ${m.status}`)
      }
      res.setupMs.push(Date.now() - c.started)
      c.state = 'up'
      c.remoteTag = m.toTag ?? ''
      c.routes = m.has(H.RecordRoute) ? m.recordRoutes.map((r) => r.raw).reverse() : []
      c.target = m.contacts[0]?.uriText ?? edgeUri
      send(inDialog(c, 'ACK', 1))
      c.timer = setTimeout(() => {
        c.state = 'byeing'
        c.bye = inDialog(c, 'BYE', 2)
        c.sentAt = Date.now()
        send(c.bye)
        retransmit(c, c.bye, 8000)
      }, hold)
      return
    }
    if (method === 'INVITE' && c.state !== 'inviting' && m.status >= 200 && m.status < 300) {
      send(inDialog(c, 'ACK', 1)) // 2xx retransmitted: our ACK was lost
      return
    }
    if (method === 'BYE' && c.state === 'byeing' && m.status >= 200) {
      finish(c, m.status < 300, m.status < 300 ? undefined : `BYE answered ${m.status}`)
    }
  })

  const interval = 1000 / o.rate
  const t0 = Date.now()
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(o.calls, Math.floor((Date.now() - t0) / interval) + 1)
      while (started < due) {
        started++
        startCall()
      }
      if (started >= o.calls) return resolve()
      setTimeout(tick, Math.max(1, Math.min(20, interval)))
    }
    tick()
  })
  if (o.calls > 0) await allDone
  await new Promise<void>((r) => socket.close(() => r()))
  return res
}

/** Records header lines (not the body: SDP carries media addresses by design) holding a forbidden string. */
function checkLeaks(m: SipMessage, forbidden: readonly string[], leaks: string[]): void {
  for (let i = 0; i < m.headerCount; i++) {
    const v = m.headerValue(i)
    for (const f of forbidden) {
      if (v.includes(f) && leaks.length < 10) leaks.push(`${m.isRequest ? m.method : m.status} ${m.headerName(i)}: ${v}`)
    }
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}
