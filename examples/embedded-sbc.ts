/**
 * A small custom SBC built on sipedge's library API. It adds four rules to the stock edge:
 *
 *   1. new calls are routed by the called number (the request-URI user) to a backend set:
 *      `+1…` -> set `us`, `+44…` -> set `uk`, anything else -> set `default`;
 *   2. headers that must not reach the Asterisks (`P-Preferred-Identity`, `X-Internal-Debug`) are removed
 *      from every new request sent to a backend;
 *   3. calls whose caller (From user) starts with a blocked prefix are answered 403 Forbidden;
 *   4. every call that ends is logged (backend, set, direction, duration, why it ended).
 *
 * Everything else — dialog stickiness, failover, topology hiding, probes, metrics — is the stock edge.
 *
 * Run it (loopback, stand-in Asterisks on 127.0.1.x must be listening):
 *   node --import @tapjs/typescript/import examples/embedded-sbc.ts \
 *     --listen udp:127.0.0.1:5060 --backend us=sip:127.0.1.1:5080 --backend uk=sip:127.0.1.2:5080 \
 *     --backend default=sip:127.0.1.3:5080 --block +1900
 *
 * In your own project import from 'sipedge' instead of '../src/index.js'.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pino, { type Logger } from 'pino'
import { createEdge, type Dialog, type Edge, type ProxyHooks, type RequestContext } from '../src/index.js'

export interface PrefixRoute {
  /** Called-number prefix, matched on the R-URI user as written (`+44`, `0044`, `1800`). */
  prefix: string
  set: string
}

export interface SbcOptions {
  /** Backend URIs per set, e.g. `{ us: ['sip:127.0.1.1:5080'], default: ['sip:127.0.1.3:5080'] }`. */
  backends: Record<string, string[]>
  /** Longest prefix wins. Default: `+1` -> us, `+44` -> uk. */
  routes?: PrefixRoute[]
  /** Set for numbers no route matches. Default `default`. */
  fallbackSet?: string
  /** Caller (From user) prefixes answered 403. */
  blockedCallers?: string[]
  /** Header names removed from requests going to the backends. */
  stripHeaders?: string[]
  /** Public listeners; default UDP and TCP on 127.0.0.1:5060. */
  listen?: string[]
  /** Internal listeners (two-sided mode); default none (one socket serves both sides). */
  internalListen?: string[]
  /** Token key, >= 16 characters, the same on every edge; default a random one. */
  secret?: string
  /** Admin API `host:port`; default none. */
  admin?: string
  probe?: boolean
  logger?: Logger
  /** Called after each call ended (besides the log line). */
  onCallEnd?: (info: CallEnd) => void
}

export interface CallEnd {
  callId: string
  backend: string | undefined
  set: string | undefined
  direction: 'in' | 'out'
  durationMs: number
  reason: string
}

export interface Sbc {
  edge: Edge
  /** New requests refused by the block list. */
  readonly blocked: number
  stop(): Promise<void>
  /** Graceful: new calls get 503 + Retry-After, calls in progress finish first. */
  shutdown(): Promise<void>
}

export const DEFAULT_ROUTES: readonly PrefixRoute[] = [
  { prefix: '+1', set: 'us' },
  { prefix: '+44', set: 'uk' },
]
export const DEFAULT_STRIP = ['P-Preferred-Identity', 'X-Internal-Debug'] as const

/**
 * The SBC's rules as sipedge hooks. Hooks run once per new (out-of-dialog) request on the hot path, so
 * everything is prepared here: routes sorted longest first, plain `startsWith` (no regex), and the URI
 * and From header are parsed only for requests that the edge parses anyway.
 */
export function sbcHooks(opts: {
  routes: readonly PrefixRoute[]
  fallbackSet: string
  blockedCallers: readonly string[]
  stripHeaders: readonly string[]
  log: Logger
  onBlocked: () => void
  onCallEnd?: (info: CallEnd) => void
}): ProxyHooks {
  const routes = [...opts.routes].sort((a, b) => b.prefix.length - a.prefix.length)
  const { fallbackSet, blockedCallers, stripHeaders, log } = opts

  const setFor = (called: string | undefined): string => {
    if (called) for (const r of routes) if (called.startsWith(r.prefix)) return r.set
    return fallbackSet
  }

  return {
    onRequest(ctx: RequestContext): void {
      // Calls the Asterisks place toward the outside (internal side) keep the stock behaviour.
      if (ctx.side !== 'public') return
      const msg = ctx.msg
      if (msg.method === 'INVITE' && blockedCallers.length > 0) {
        const caller = msg.from.uri.user
        if (caller !== undefined && blockedCallers.some((p) => caller.startsWith(p))) {
          opts.onBlocked()
          log.info({ callId: msg.callId, caller, source: ctx.source.address }, 'call refused: blocked caller prefix')
          ctx.reject = { status: 403, reason: 'Forbidden' }
          return
        }
      }
      ctx.set = setFor(msg.uri.user)
      for (const name of stripHeaders) if (msg.indexOf(name) >= 0) ctx.edit.removeHeaders(name)
    },
    onDialogEnd(dialog: Dialog, reason: string): void {
      const info: CallEnd = {
        callId: dialog.callId,
        backend: dialog.backend?.id,
        set: dialog.backend?.set,
        direction: dialog.direction,
        durationMs: Date.now() - dialog.createdAt,
        reason,
      }
      log.info(info, 'call ended')
      opts.onCallEnd?.(info)
    },
  }
}

/** Starts the SBC: an edge with the hooks above, backends of every set, listening as configured. */
export async function startSbc(opts: SbcOptions): Promise<Sbc> {
  const log = opts.logger ?? pino({ level: 'info' })
  let blocked = 0
  const backends: string[] = []
  for (const [set, uris] of Object.entries(opts.backends)) for (const uri of uris) backends.push(`set=${set}:${uri}`)
  const hooks = sbcHooks({
    routes: opts.routes ?? DEFAULT_ROUTES,
    fallbackSet: opts.fallbackSet ?? 'default',
    blockedCallers: opts.blockedCallers ?? [],
    stripHeaders: opts.stripHeaders ?? DEFAULT_STRIP,
    log,
    onBlocked: () => blocked++,
    ...(opts.onCallEnd ? { onCallEnd: opts.onCallEnd } : {}),
  })
  const edge = await createEdge({
    backends,
    hooks,
    logger: log,
    ...(opts.listen ? { listen: opts.listen } : {}),
    ...(opts.internalListen ? { internalListen: opts.internalListen } : {}),
    ...(opts.secret ? { secret: opts.secret } : {}),
    ...(opts.admin ? { admin: opts.admin } : {}),
    ...(opts.probe === false ? { probe: { enabled: false, intervalMs: 5000, timeoutMs: 2000, failThreshold: 3, okThreshold: 2 } } : {}),
  })
  await edge.start()
  return {
    edge,
    get blocked() {
      return blocked
    },
    stop: () => edge.stop(),
    shutdown: async () => void (await edge.shutdown()),
  }
}

/** `--backend SET=URI` (repeatable), `--listen SPEC`, `--block PREFIX`, `--strip NAME`, `--admin ADDR`. */
async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', multiple: true },
      'internal-listen': { type: 'string', multiple: true },
      backend: { type: 'string', multiple: true },
      block: { type: 'string', multiple: true },
      strip: { type: 'string', multiple: true },
      admin: { type: 'string' },
      'no-probe': { type: 'boolean', default: false },
    },
  })
  const backends: Record<string, string[]> = {}
  for (const b of values.backend ?? []) {
    const eq = b.indexOf('=')
    if (eq <= 0) throw new Error(`--backend ${b}: expected SET=sip:host:port`)
    ;(backends[b.slice(0, eq)] ??= []).push(b.slice(eq + 1))
  }
  const sbc = await startSbc({
    backends,
    ...(values.listen ? { listen: values.listen } : {}),
    ...(values['internal-listen'] ? { internalListen: values['internal-listen'] } : {}),
    ...(values.block ? { blockedCallers: values.block } : {}),
    ...(values.strip ? { stripHeaders: values.strip } : {}),
    ...(values.admin ? { admin: values.admin } : {}),
    ...(process.env.SIPEDGE_SECRET ? { secret: process.env.SIPEDGE_SECRET } : {}),
    probe: !values['no-probe'],
  })
  let stopping = false
  const stop = () => {
    if (stopping) process.exit(1) // second signal: do not wait for calls
    stopping = true
    void sbc.shutdown().then(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isMain()) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`embedded-sbc: ${(err as Error).message}\n`)
    process.exit(1)
  })
}
