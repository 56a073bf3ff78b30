// What every step of the proxy shares: the transports and sides, the token codec, the dialog table, the
// timer wheel, counters, hooks and log, and the stateless reply. Built once by Proxy; each step keeps a
// reference (no per-message allocation, one property load more than a field of Proxy).
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { targetKey, type Backend } from '../dispatch/backend.js'
import type { Dispatcher } from '../dispatch/dispatcher.js'
import { buildResponse, newTag } from '../sip/index.js'
import type { Transports } from '../transport/transports.js'
import type { Inbound, Peer } from '../transport/types.js'
import { LogOnce } from '../util/log-once.js'
import { Sides, responseDestination } from './addressing.js'
import { DialogTable } from './dialogs.js'
import type { ProxyHooks } from './hooks.js'
import { NO_OBSERVER, type ProxyDefence, type ProxyObserver, type ProxyOptions } from './options.js'
import { TimerWheel } from './timer_wheel.js'
import { TokenCodec } from './tokens.js'

export class ProxyCore {
  readonly tokens: TokenCodec
  readonly dialogs: DialogTable
  // 25 ms resolution: SIP timers are hundreds of ms; 40 wake-ups a second cost nothing measurable.
  readonly wheel = new TimerWheel(25, 8192)
  readonly observer: ProxyObserver
  readonly hooks: ProxyHooks
  readonly once: LogOnce
  /** Scanner/toll-fraud defence (src/defence), when given: admission screens with it, relayed answers teach it. */
  readonly defence: ProxyDefence | undefined
  /** Local tag for responses the edge itself generates (stable per process, enough to be unique per call). */
  readonly localTag = newTag()
  /**
   * This process among the edges sharing the secret, sealed into Path tokens of connection flows: a
   * connection id means something only to the process that accepted the connection (ids restart at 1).
   */
  readonly instance = randomBytes(4).readUInt32BE(0)

  constructor(
    readonly transports: Transports,
    readonly sides: Sides,
    readonly dispatcher: Dispatcher,
    /** Live options: SIGHUP assigns the reloadable keys into this object. */
    readonly opts: ProxyOptions,
    readonly log: Logger,
  ) {
    this.tokens = new TokenCodec(opts.secret)
    this.observer = opts.observer ?? NO_OBSERVER
    this.hooks = opts.hooks ?? {}
    this.defence = opts.defence
    this.once = new LogOnce(log, 10_000, 60_000)
    this.dialogs = new DialogTable({
      max: opts.maxDialogs ?? 200_000,
      ttlS: opts.dialogTtlS ?? 4 * 3600,
      onEnd: (d, reason) => {
        if (d.backend) this.dispatcher.callEnded(d.backend)
        this.observer.callEnded(d.backend, reason)
        this.hooks.onDialogEnd?.(d, reason)
      },
    })
  }

  /** Stateless reply to a request (errors, local OPTIONS). */
  replyTo(inb: Inbound, status: number, reason?: string, headers?: Array<[string, string]>): void {
    const msg = inb.msg
    if (msg.method === 'ACK') return
    const opts: { toTag?: string; headers?: Array<[string, string]> } = {}
    if (status > 100 && msg.toTag === undefined) opts.toTag = this.localTag
    if (headers) opts.headers = headers
    const out = buildResponse(msg, status, reason, opts)
    this.observer.localReply(status)
    this.observer.responseSent(this.sides.sideOf(inb.listener, inb.source), status)
    this.transports.send(out, responseDestination(msg.via, inb.source), inb.listener, inb.connId)
  }

  /** The configured backend at this address, if any (to count its calls). */
  backendAt(peer: Peer): Backend | undefined {
    // Backends are reached over UDP or TCP only (discovery/backend_uri.ts).
    if (peer.proto !== 'udp' && peer.proto !== 'tcp') return undefined
    return this.dispatcher.byKey(targetKey({ proto: peer.proto, host: peer.address, port: peer.port }))
  }

  /** A backend, an address of the internal networks, or one of the internal side's own hosts. */
  isInternalHost(address: string): boolean {
    return this.sides.isBackendHost(address) || this.sides.isInternalAddress(address) || this.sides.internalHosts.includes(address)
  }
}
