// Builds an etcd3 client tuned for fast failure and fast reconnection. Our callers own the retry loops
// (EtcdSource resyncs, register re-grants), so etcd3's own fault handling is switched off:
// - its default per-host circuit breaker stays open 5 s after 3 failures, and its global policy retries
//   3 times: both would delay convergence after etcd comes back;
// - gRPC's subchannel reconnect backoff defaults to 1 s growing to 120 s: capped here at 500 ms;
// - etcd3 1.1.2 documents `dialTimeout` but never reads it, so unary calls get a deadline instead.
import { readFileSync } from 'node:fs'
import { Etcd3, type IOptions } from 'etcd3'

export interface EtcdConnectOptions {
  /** `http://127.0.0.1:2379` or `https://...`; all of one scheme. */
  endpoints: string[]
  auth?: { username: string; password: string }
  /** PEM file paths. */
  tls?: { ca?: string; cert?: string; key?: string }
  /** Deadline of each unary call (range, put, grant, revoke). Default 2000 ms. */
  callTimeoutMs?: number
}

type FaultHandling = NonNullable<IOptions['faultHandling']>
type PolicyT = NonNullable<FaultHandling['global']>
type BackoffT = NonNullable<FaultHandling['watchBackoff']>

const neverAborted = new AbortController().signal
const noEvent = () => ({ dispose() {} })

/** A cockatiel-shaped policy that runs the call once, with no retry and no breaker. */
const passThrough = {
  onSuccess: noEvent,
  onFailure: noEvent,
  execute: async <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal) =>
    fn({ signal: signal ?? neverAborted }),
} as unknown as PolicyT

/** Constant short delay for etcd3's own watch-stream reconnects (EtcdSource replaces lost watches itself). */
const shortWatchBackoff: BackoffT = {
  duration: 200,
  next() {
    return shortWatchBackoff
  },
} as BackoffT

export function createEtcdClient(opts: EtcdConnectOptions): Etcd3 {
  if (opts.endpoints.length === 0) throw new Error('at least one etcd endpoint is required')
  for (const e of opts.endpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(e)) throw new Error(`etcd endpoint must look like http://host:port (got "${e}")`)
  }
  const callTimeoutMs = opts.callTimeoutMs ?? 2000
  const options: IOptions = {
    hosts: opts.endpoints.map((e) => e.replace(/\/$/, '')),
    faultHandling: {
      host: () => passThrough,
      global: passThrough,
      watchBackoff: shortWatchBackoff,
    },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
      // A private subchannel pool: a fresh client after a failure must not inherit a shared backoff.
      'grpc.use_local_subchannel_pool': 1,
      // Detects a frozen etcd (SIGSTOP, dead host) on an open stream. etcd rejects pings under 5 s.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  }
  if (opts.auth) options.auth = { username: opts.auth.username, password: opts.auth.password }
  if (opts.tls && (opts.tls.ca || opts.tls.cert || opts.tls.key)) {
    if (Boolean(opts.tls.cert) !== Boolean(opts.tls.key)) throw new Error('etcd TLS client cert and key go together')
    options.credentials = {
      // null means "system roots" to gRPC; etcd3's type insists on a Buffer.
      rootCertificate: (opts.tls.ca ? readFileSync(opts.tls.ca) : null) as unknown as Buffer,
      ...(opts.tls.key ? { privateKey: readFileSync(opts.tls.key) } : {}),
      ...(opts.tls.cert ? { certChain: readFileSync(opts.tls.cert) } : {}),
    }
  }
  return new Etcd3(options)
}

/** Short human text for an etcd/gRPC error, for logs. */
export function etcdErrorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  // etcd3 builds "Lease <id> is expired or revoked" and sometimes passes a sentence as the id:
  // "Lease We lost connection to etcd and our lease has expired. is expired or revoked".
  const m = /^Lease (.+) is expired or revoked$/s.exec(err.message)
  if (m && !/^\d+$/.test(m[1]!)) return `${err.name}: lease expired or revoked (${m[1]!.replace(/\.$/, '')})`
  return `${err.name}: ${err.message}`
}
