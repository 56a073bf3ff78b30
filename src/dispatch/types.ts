/** Administrative state, set by an operator or by discovery. Kept apart from health. */
export type AdminState = 'active' | 'draining' | 'disabled'

/** Health state, set by the OPTIONS prober and by transaction outcomes. */
export type HealthState = 'up' | 'probing' | 'down'

export type Algorithm = 'round-robin' | 'weighted' | 'hash-callid' | 'hash-from-user' | 'least-calls'

/** A backend as described by a discovery source (static config or an etcd key). */
export interface BackendSpec {
  /** Stable id within the edge: for etcd `<set>/<id>`, for static entries derived from the URI. */
  id: string
  /** Name of the backend set (dispatcher group). */
  set: string
  /** SIP URI of the backend, e.g. `sip:127.0.1.1:5080` or `sip:10.0.0.5:5060;transport=tcp`. */
  uri: string
  weight: number
  priority: number
  admin: AdminState
  source: 'static' | 'etcd' | 'api'
  /** Unknown fields from the source, kept as they were. */
  extra?: Record<string, unknown>
}

/** Where to send to reach a backend: resolved from its URI (IP literals only, no DNS on the hot path). */
export interface BackendTarget {
  proto: 'udp' | 'tcp' | 'tls'
  host: string
  port: number
}

/** Context a selection algorithm may look at. */
export interface SelectContext {
  callId: string
  fromUser: string
}

/** A source of backends (static list, etcd watch). Calls the sink as its view changes. */
export interface BackendSink {
  upsert(spec: BackendSpec): void
  remove(id: string): void
}
