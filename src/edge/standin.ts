import { createSocket, type Socket } from 'node:dgram'
import { H, buildResponse, newTag, parseMessage, type SipMessage } from '../sip/index.js'

/**
 * A small answering backend made with sipedge's own message core: it stands in for an Asterisk container
 * in `sipedge demo` when SIPp is not installed, and in tests. It answers INVITE with 180 then 200 (or with a
 * fixed failure status), OPTIONS and BYE with 200, CANCEL with 200 + 487, and repeats its last response to
 * a retransmitted request. UDP only.
 */
export interface StandInOptions {
  host: string
  port: number
  /** Answer every INVITE with this final status instead of 200 (e.g. 503 to show failover). */
  failWith?: number
}

interface CallState {
  tag: string
  last: Buffer | undefined
  to: { address: string; port: number }
  seen: number
}

export class StandInBackend {
  readonly host: string
  port: number
  calls = 0
  private socket: Socket | undefined
  private readonly state = new Map<string, CallState>()
  private readonly sdp: string

  constructor(private readonly opts: StandInOptions) {
    this.host = opts.host
    this.port = opts.port
    this.sdp = `v=0\r\no=standin 1 1 IN IP4 ${opts.host}\r\ns=-\r\nc=IN IP4 ${opts.host}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`
  }

  get id(): string {
    return `${this.host}:${this.port}`
  }

  async start(): Promise<void> {
    const socket = createSocket('udp4')
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(this.opts.port, this.opts.host, () => {
        socket.off('error', reject)
        resolve()
      })
    })
    socket.on('error', () => {})
    socket.on('message', (buf, rinfo) => this.onMessage(buf, rinfo))
    this.port = socket.address().port
    this.socket = socket
  }

  stop(): Promise<void> {
    const s = this.socket
    this.socket = undefined
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()))
  }

  private onMessage(buf: Buffer, rinfo: { address: string; port: number }): void {
    let msg: SipMessage
    try {
      msg = parseMessage(buf)
      if (!msg.isRequest) return
      this.onRequest(msg, { address: rinfo.address, port: rinfo.port })
    } catch {
      // A stand-in ignores what it cannot read.
    }
  }

  private onRequest(msg: SipMessage, from: { address: string; port: number }): void {
    const key = msg.callId + '|' + msg.cseq.seq + '|' + msg.method
    const known = this.state.get(key)
    if (known) {
      if (known.last) this.send(known.last, from)
      return
    }
    const method = msg.method
    if (method === 'ACK') return
    if (this.state.size > 20_000) this.sweep()
    const tag = msg.toTag ?? this.dialogTag(msg.callId)
    const st: CallState = { tag, last: undefined, to: from, seen: Date.now() }
    this.state.set(key, st)
    if (method === 'INVITE') {
      if (msg.toTag === undefined) this.calls++
      const fail = this.opts.failWith
      if (fail) return this.reply(msg, st, fail, false)
      this.reply(msg, st, 180, false)
      this.reply(msg, st, 200, true)
      return
    }
    // INVITEs are answered at once, so a CANCEL always comes too late: 200 for it, the call stands.
    this.reply(msg, st, 200, false)
  }

  private reply(req: SipMessage, st: CallState, status: number, withBody: boolean): void {
    const headers: Array<[string, string]> = []
    if (status > 100 && status < 300) {
      for (const rr of req.getHeaders(H.RecordRoute)) headers.push(['Record-Route', rr])
      headers.push(['Contact', `<sip:standin@${this.id}>`])
    }
    const opts: Parameters<typeof buildResponse>[3] = { toTag: st.tag, headers }
    if (withBody) {
      opts.body = this.sdp
      opts.contentType = 'application/sdp'
    }
    const out = buildResponse(req, status, undefined, opts)
    st.last = out
    this.send(out, st.to)
  }

  private dialogTag(callId: string): string {
    const existing = this.state.get(callId + '|tag')
    if (existing) return existing.tag
    const tag = newTag()
    this.state.set(callId + '|tag', { tag, last: undefined, to: { address: '', port: 0 }, seen: Date.now() })
    return tag
  }

  /** Answers are kept for retransmissions (64*T1); older ones go, so memory stays flat. */
  private sweep(): void {
    const old = Date.now() - 32_000
    for (const [k, v] of this.state) if (v.seen < old) this.state.delete(k)
  }

  private send(buf: Buffer, to: { address: string; port: number }): void {
    this.socket?.send(buf, to.port, to.address)
  }
}
