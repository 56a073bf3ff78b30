// NAT keepalives toward registered phones (`nat.keepalive`, off by default; Kamailio nathelper's natping):
// the edge learns each live registration's flow from the 2xx its REGISTER got, and every interval sends
// that flow an OPTIONS or a CRLF keepalive so the phone's NAT pinhole stays open for incoming calls.
// Bounded: past `max` flows the least recently refreshed registration is forgotten.
import { randomBytes } from 'node:crypto'
import type { SipMessage } from '../sip/index.js'
import type { Listener, Peer } from '../transport/types.js'
import { hostport } from './addressing.js'
import type { ProxyCore } from './core.js'
import { grantedSeconds } from './path.js'
import type { ServerTx } from './transactions.js'

export interface KeepaliveOptions {
  intervalMs: number
  /** `options`: an OPTIONS request (the phone answers, which also refreshes a stateful NAT); `crlf`: CRLFCRLF. */
  method: 'options' | 'crlf'
  /** Flows kept at most. */
  max: number
}

interface Flow {
  peer: Peer
  listener: Listener
  connId: number | undefined
  /** ms since epoch when the registration lapses. */
  until: number
}

const CRLF2 = Buffer.from('\r\n\r\n')

export class KeepaliveTable {
  private readonly flows = new Map<string, Flow>()
  private timer: NodeJS.Timeout | undefined
  private seq = 0
  private readonly callIdBase = randomBytes(6).toString('hex')
  /** Keepalives sent (for tests and metrics). */
  sent = 0

  constructor(
    private readonly core: ProxyCore,
    private readonly opts: KeepaliveOptions,
  ) {}

  get size(): number {
    return this.flows.size
  }

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => this.tick(Date.now()), this.opts.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** A 2xx to a REGISTER from `st.source`: the flow is registered for the granted time (0: removed). */
  learn(st: ServerTx, request: SipMessage, response: SipMessage): void {
    const key = `${st.source.proto}:${st.source.address}:${st.source.port}`
    // A fetch (no Contact) changes nothing; `Contact: *` with Expires 0 removes every binding.
    if (!request.contactStar && request.contacts.length === 0) return
    const seconds = request.contactStar ? 0 : grantedSeconds(response, request.contacts[0])
    if (seconds <= 0) {
      this.flows.delete(key)
      return
    }
    const until = Date.now() + seconds * 1000
    this.flows.delete(key) // re-inserted last: Map order is then the order of the latest registrations
    if (this.flows.size >= this.opts.max) this.evictSoonest()
    this.flows.set(key, { peer: st.source, listener: st.listener, connId: st.connId, until })
  }

  /** Sends one keepalive to every live flow and forgets the lapsed ones. */
  tick(now: number): void {
    const transports = this.core.transports
    for (const [key, f] of this.flows) {
      if (f.until <= now) {
        this.flows.delete(key)
        continue
      }
      if (f.peer.proto !== 'udp') {
        // A connection flow: CRLFCRLF on that very connection (RFC 5626 §4.4.1), never a new connection.
        const conn = f.connId !== undefined ? transports.table.get(f.connId) : undefined
        if (!conn || !conn.isOpen) {
          this.flows.delete(key)
          continue
        }
        conn.write(CRLF2)
      } else {
        transports.send(this.opts.method === 'crlf' ? CRLF2 : this.options(f), f.peer, f.listener)
      }
      this.sent++
    }
  }

  private options(f: Flow): Buffer {
    const me = f.listener.hostport
    const n = ++this.seq
    const to = hostport(f.peer.address, f.peer.port)
    return Buffer.from(
      `OPTIONS sip:${to} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP ${me};branch=z9hG4bKka${this.callIdBase}${n.toString(36)};rport\r\n` +
        `Max-Forwards: 70\r\n` +
        `From: <sip:${me}>;tag=${this.core.localTag}\r\n` +
        `To: <sip:${to}>\r\n` +
        `Call-ID: ka${this.callIdBase}.${n.toString(36)}\r\n` +
        `CSeq: ${n} OPTIONS\r\n` +
        `Content-Length: 0\r\n\r\n`,
    )
  }

  /** The least recently refreshed registration (first in Map order): O(1), unlike a search for the soonest expiry. */
  private evictSoonest(): void {
    const first = this.flows.keys().next()
    if (!first.done) this.flows.delete(first.value)
  }
}
