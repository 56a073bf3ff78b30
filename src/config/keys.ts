/**
 * THE description of every config key, one line each: its field (type and checks, fields.ts), default, flag,
 * argument name, help text, and whether SIGHUP can change it. Everything else is derived from this table:
 * the EdgeConfig type, DEFAULT_CONFIG, the flags and environment variables (SIPEDGE_ + the flag name),
 * `--help`, RESTART_KEYS, the YAML/env/flag validation (schema.ts) and the README table
 * (scripts/config-table.mjs). Adding a key is one line here.
 */
import type { Algorithm } from '../dispatch/types.js'
import { DEFAULT_PREFIX as ETCD_DEFAULT_PREFIX } from '../discovery/backend_value.js'
import type { Side } from '../transport/types.js'
import { bool, int, intList, list, map, oneOf, str, type Field, type FlagType } from './fields.js'
import * as syntax from './syntax.js'
import { MEDIA_MODES, checkIp, mediaSets, ngFlags, ngName, rtpengineSpecs } from './media_fields.js'
import { DEFAULT_BAN_PREFIX, DEFAULT_SCANNER_AGENTS, DEFAULT_SCANNER_FROM, DEFENCE_DEFAULTS as DD } from '../defence/defaults.js'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
export const ALGORITHMS: readonly Algorithm[] = ['round-robin', 'weighted', 'hash-callid', 'hash-from-user', 'least-calls']
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface Meta {
  /** The flag without `--`; its environment variable is SIPEDGE_ + the flag in upper snake case unless `env`. */
  flag: string
  arg?: string
  env?: string
  help: string
  /** SIGHUP cannot change it (sockets, table sizes, the token key, connections to other systems). */
  restart?: true
  /** Given as a flag it is visible in `ps`: the loader warns. */
  secret?: true
  /** What the README table shows as the default when the value itself says little ("random per start"). */
  docDefault?: string
}

/** A key: `optional` ones may be absent from the complete config; the others have a default or are required. */
export interface Key<T, O extends boolean> {
  readonly type: 'key'
  readonly field: Field<T>
  readonly meta: Meta
  readonly default: T | undefined
  readonly optional: O
}
export interface Section<S extends Shape, O extends boolean> {
  readonly type: 'section'
  readonly keys: S
  readonly optional: O
  /** Keys without a default that must be there when the (optional) section is. */
  readonly required: readonly string[]
}
export type Entry = Key<any, boolean> | Section<any, boolean>
export type Shape = Record<string, Entry>

const key = <T>(field: Field<T>, def: T, meta: Meta): Key<T, false> => ({ type: 'key', field, meta, default: def, optional: false })
const optional = <T>(field: Field<T>, meta: Meta): Key<T, true> => ({ type: 'key', field, meta, default: undefined, optional: true })
const required = <T>(field: Field<T>, meta: Meta): Key<T, false> => ({ type: 'key', field, meta, default: undefined, optional: false })
const section = <S extends Shape>(keys: S): Section<S, false> => ({ type: 'section', keys, optional: false, required: [] })
const optionalSection = <S extends Shape>(keys: S, requiredKeys: Array<keyof S & string>): Section<S, true> => ({
  type: 'section', keys, optional: true, required: requiredKeys,
})

const listen = (side: Side) => list((s) => err(syntax.parseListenSpec(s, side)))
const cidrs = list((s) => err(syntax.parseCidr(s)))
const err = (r: unknown): string | undefined => (typeof r === 'string' ? r : undefined)
const restart = true as const
const patterns = list((s) => (/^[\x20-\x7e]{1,256}$/.test(s) ? undefined : `"${s}" must be 1-256 printable ASCII characters`))
const counter = int(0, 1_000_000)
const DAY_MS = 86_400_000

export const CONFIG = {
  listen: key(listen('public'), ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'], { flag: 'listen', arg: 'SPEC', help: 'public listener proto:host[:port][ advertise host[:port]]', restart }),
  internalListen: key(listen('internal'), [], { flag: 'internal-listen', arg: 'SPEC', help: 'internal-side listener (backends); default: the public ones', restart }),
  backends: key(list((s) => err(syntax.parseBackendSpec(s))), [], { flag: 'backend', arg: 'URI', env: 'SIPEDGE_BACKENDS', help: 'static backend [set=NAME:]sip:host[:port][;weight=N][;priority=N]' }),
  algorithm: key(oneOf(ALGORITHMS), 'round-robin', { flag: 'algorithm', arg: 'ALG', help: `dispatch algorithm: ${ALGORITHMS.join('|')}` }),
  setAlgorithms: key(map(/^[A-Za-z0-9_.-]+$/, ALGORITHMS), {}, { flag: 'set-algorithm', arg: 'SET=ALG', env: 'SIPEDGE_SET_ALGORITHMS', help: 'algorithm for one set, SET=ALG' }),
  secret: key(str({ minLength: 16, check: syntax.checkSecret }), '', { flag: 'secret', arg: 'KEY', help: 'key for Record-Route/Contact tokens (>= 16 chars; same on every edge)', restart, secret: true, docDefault: 'random per start' }),
  etcd: optionalSection({
    endpoints: required(list(() => undefined, syntax.normaliseEtcdEndpoint), { flag: 'etcd', arg: 'URL', help: 'etcd endpoint(s) for backend discovery, http://host:port', restart, docDefault: 'off' }),
    prefix: key(str({ minLength: 1, check: (s) => (s.startsWith('/') && s.endsWith('/') ? undefined : `"${s}" must start and end with /`) }), ETCD_DEFAULT_PREFIX, { flag: 'etcd-prefix', arg: 'PREFIX', help: `etcd key prefix (default ${ETCD_DEFAULT_PREFIX})`, restart }),
    username: optional(str(), { flag: 'etcd-username', arg: 'USER', help: 'etcd user', restart }),
    password: optional(str(), { flag: 'etcd-password', arg: 'PASS', help: 'etcd password (prefer SIPEDGE_ETCD_PASSWORD)', restart, secret: true }),
    cacert: optional(str(), { flag: 'etcd-cacert', arg: 'FILE', help: 'CA certificate file for etcd TLS', restart }),
    cert: optional(str(), { flag: 'etcd-cert', arg: 'FILE', help: 'client certificate file for etcd TLS', restart }),
    key: optional(str(), { flag: 'etcd-key', arg: 'FILE', help: 'client key file for etcd TLS', restart }),
  }, ['endpoints']),
  probe: section({
    enabled: key(bool(), true, { flag: 'probe', help: 'OPTIONS health probes (--no-probe to disable)' }),
    intervalMs: key(int(100, 3_600_000), 5000, { flag: 'probe-interval-ms', arg: 'MS', help: 'time between OPTIONS probes' }),
    timeoutMs: key(int(50, 60_000), 2000, { flag: 'probe-timeout-ms', arg: 'MS', help: 'probe answer deadline (< interval)' }),
    failThreshold: key(int(1, 100), 3, { flag: 'probe-fail-threshold', arg: 'N', help: 'failed probes before a backend is down' }),
    okThreshold: key(int(1, 100), 2, { flag: 'probe-ok-threshold', arg: 'N', help: 'good probes before a backend is up again' }),
  }),
  failover: section({
    maxTries: key(int(1, 16), 3, { flag: 'failover-max-tries', arg: 'N', help: 'backends tried per INVITE' }),
    inviteTimeoutMs: key(int(100, 180_000), 2000, { flag: 'failover-invite-timeout-ms', arg: 'MS', help: 'no provisional within this -> next backend' }),
    codes: key(intList(300, 699), [408, 500, 503], { flag: 'failover-codes', arg: 'CODES', help: 'final responses that trigger failover' }),
    timerCMs: key(int(1000, 86_400_000), 181_000, { flag: 'failover-timer-c-ms', arg: 'MS', help: 'ringing call cancelled after this long without a new provisional (timer C)' }),
  }),
  trunk: optional(str({ check: syntax.checkTrunk }), { flag: 'trunk', arg: 'URI', help: 'outbound gateway URI for calls from backends (a host name is resolved by RFC 3263: NAPTR, SRV, A)', restart }),
  domains: key(list((s) => err(syntax.parseDomain(s))), [], { flag: 'domain', arg: 'HOST[:PORT]', env: 'SIPEDGE_DOMAINS', help: "host name or host:port served as the edge's own (Request-URIs for it are dispatched)" }),
  inboundTrunks: key(list((s) => err(syntax.parseInboundTrunk(s))), [], { flag: 'inbound-trunk', arg: '[set=NAME:]CIDR', env: 'SIPEDGE_INBOUND_TRUNKS', help: 'source (carrier, upstream proxy) whose new requests are dispatched whatever their Request-URI host, to set NAME' }),
  dns: section({
    servers: key(list(syntax.checkDnsServer), [], { flag: 'dns-server', arg: 'IP[:PORT]', env: 'SIPEDGE_DNS_SERVERS', help: "resolver for next hops given by name (default: the system's)", restart }),
    staleMs: key(int(0, 7 * DAY_MS), 3_600_000, { flag: 'dns-stale-ms', arg: 'MS', help: 'use a next hop answer this long past its TTL while the resolvers fail', restart }),
    timeoutMs: key(int(50, 30_000), 1000, { flag: 'dns-timeout-ms', arg: 'MS', help: 'one DNS query try (each server is tried twice)', restart }),
  }),
  trustedNetworks: key(cidrs, [], { flag: 'trusted-network', arg: 'CIDR', env: 'SIPEDGE_TRUSTED_NETWORKS', help: 'CIDR allowed to send calls outward' }),
  allowPublic: key(cidrs, [], { flag: 'allow-public', arg: 'CIDR', help: 'CIDR allowed on the public side (default all)' }),
  denyPublic: key(cidrs, [], { flag: 'deny-public', arg: 'CIDR', help: 'CIDR refused on the public side' }),
  allowInternal: key(cidrs, [], { flag: 'allow-internal', arg: 'CIDR', help: 'CIDR allowed on the internal side (default all)' }),
  denyInternal: key(cidrs, [], { flag: 'deny-internal', arg: 'CIDR', help: 'CIDR refused on the internal side' }),
  rateLimit: section({
    rps: key(int(0, 1_000_000), 0, { flag: 'rate-limit-rps', arg: 'N', help: 'requests per second per source, 0 = off' }),
    burst: key(int(1, 10_000_000), 100, { flag: 'rate-limit-burst', arg: 'N', help: 'token bucket size per source' }),
    action: key(oneOf(['reply', 'drop'] as const), 'reply', { flag: 'rate-limit-action', arg: 'ACTION', help: 'over the limit: reply (503) or drop' }),
  }),
  // On by default: a backend's Call-ID may name its host ("1-17270@10.0.3.7"), and nothing internal may leak.
  maskCallId: key(bool(), true, { flag: 'mask-call-id', help: 'replace the Call-ID of calls placed by backends with an encrypted one toward the public side (restored on the way back)' }),
  // Scanner and toll-fraud defence on the public side (src/defence); SIGHUP does not rebuild it.
  defence: section({
    enabled: key(bool(), true, { flag: 'defence', help: 'scanner and toll-fraud defence on the public side (--no-defence to disable)', restart }),
    action: key(oneOf(['drop', 'reject'] as const), DD.action, { flag: 'defence-action', arg: 'ACTION', help: 'what a banned source gets: drop (nothing) or reject (403)', restart }),
    banS: key(int(1, 30 * 86_400), DD.banS, { flag: 'defence-ban-s', arg: 'S', help: 'ban duration', restart }),
    windowS: key(int(1, 86_400), DD.windowS, { flag: 'defence-window-s', arg: 'S', help: 'window of the defence counters', restart }),
    challenges: key(counter, DD.challenges, { flag: 'defence-challenges', arg: 'N', help: 'challenges (401/407) per source and window before a ban, 0 = off', restart }),
    failures: key(counter, DD.failures, { flag: 'defence-failures', arg: 'N', help: 'failed retries (credentials refused) per source and window before a ban, 0 = off', restart }),
    userFailures: key(counter, DD.userFailures, { flag: 'defence-user-failures', arg: 'N', help: 'failed retries against one user per window, then each failing source is banned, 0 = off', restart }),
    notFound: key(counter, DD.notFound, { flag: 'defence-not-found', arg: 'N', help: 'not-found answers (404/484/604, 403 without credentials) per source and window before a ban, 0 = off', restart }),
    scanner: key(counter, DD.scanner, { flag: 'defence-scanner', arg: 'N', help: 'fingerprint matches per source and window before a ban (always dropped), 0 = never ban', restart }),
    userAgents: key(patterns, [...DEFAULT_SCANNER_AGENTS], { flag: 'defence-user-agent', arg: 'TEXT', env: 'SIPEDGE_DEFENCE_USER_AGENTS', help: 'scanner User-Agent substring, case-insensitive (replaces the default list)', restart }),
    fromPatterns: key(patterns, [...DEFAULT_SCANNER_FROM], { flag: 'defence-from', arg: 'TEXT', env: 'SIPEDGE_DEFENCE_FROM_PATTERNS', help: 'scanner From substring, case-insensitive', restart }),
    toPatterns: key(patterns, [], { flag: 'defence-to', arg: 'TEXT', env: 'SIPEDGE_DEFENCE_TO_PATTERNS', help: 'scanner To substring, case-insensitive', restart }),
    allow: key(cidrs, [], { flag: 'defence-allow', arg: 'CIDR', env: 'SIPEDGE_DEFENCE_ALLOW', help: 'CIDR never banned nor fingerprinted (trunks, monitoring)', restart }),
    maxBans: key(int(1, 10_000_000), DD.maxBans, { flag: 'defence-max-bans', arg: 'N', help: 'ban table size (LRU; also the counter tables)', restart }),
    etcdPrefix: key(str({ minLength: 1, check: (s) => (s.startsWith('/') && s.endsWith('/') ? undefined : `"${s}" must start and end with /`) }), DEFAULT_BAN_PREFIX, { flag: 'defence-etcd-prefix', arg: 'PREFIX', help: 'etcd prefix of bans shared across edges (when etcd is set)', restart }),
  }),
  admin: optional(str({ check: syntax.checkAdminAddress }), { flag: 'admin', arg: 'ADDR', help: 'admin HTTP server host:port (metrics, health, backends)', restart }),
  adminWebrtcPage: optional(str({ check: (s) => (/^\/[A-Za-z0-9._~\/-]*$/.test(s) ? undefined : `"${s}" must be a URL path starting with /`) }), { flag: 'admin-webrtc-page', arg: 'PATH', help: 'serve the example WebRTC softphone (examples/webrtc, SIP.js) on the admin server at this path, without the token; off by default', restart }),
  adminToken: optional(str({ minLength: 8 }), { flag: 'admin-token', arg: 'TOKEN', help: 'bearer token for the admin API (>= 8 chars; prefer SIPEDGE_ADMIN_TOKEN)', restart, secret: true }),
  hep: optionalSection({
    address: required(str({ check: syntax.checkHepAddress }), { flag: 'hep', arg: 'ADDR', help: 'HEP3 collector udp:host:port (Homer, sngrep -L)', restart, docDefault: 'off' }),
    id: key(int(0, 0xffffffff), 1, { flag: 'hep-id', arg: 'N', help: 'HEP capture agent id', restart }),
    password: optional(str(), { flag: 'hep-password', arg: 'PASS', help: 'HEP authentication key', restart, secret: true }),
  }, ['address']),
  logLevel: key(oneOf(LOG_LEVELS), 'info', { flag: 'log-level', arg: 'LEVEL', help: `log level: ${LOG_LEVELS.join('|')}` }),
  logLevels: key(map(/^[a-z][a-z0-9_-]*$/, LOG_LEVELS), {}, { flag: 'component-log-level', arg: 'C=LEVEL', env: 'SIPEDGE_LOG_LEVELS', help: 'level for one component, COMPONENT=LEVEL' }),
  limits: section({
    maxMessageSize: key(int(1500, 1_048_576), 65535, { flag: 'max-message-size', arg: 'BYTES', help: 'largest SIP message accepted (bytes)', restart }),
    maxConnections: key(int(1, 1_000_000), 10000, { flag: 'max-connections', arg: 'N', help: 'TCP connections at most', restart }),
    tcpIdleTimeoutMs: key(int(1000, DAY_MS), 120000, { flag: 'tcp-idle-timeout-ms', arg: 'MS', help: 'close idle TCP connections after', restart }),
    maxDialogs: key(int(1, 10_000_000), 100000, { flag: 'max-dialogs', arg: 'N', help: 'dialog cache size', restart }),
    dialogTtlS: key(int(60, 7 * 86_400), 43200, { flag: 'dialog-ttl-s', arg: 'S', help: 'dialog cache entry lifetime without traffic', restart }),
    maxTransactions: key(int(1, 10_000_000), 200000, { flag: 'max-transactions', arg: 'N', help: 'transactions at most (then 503)', restart }),
    // V8's --heap-growing-percent, set by the process itself (V8 refuses it in NODE_OPTIONS): README "Performance".
    heapGrowthPercent: key(int(0, 100), 0, { flag: 'heap-growth-percent', arg: 'P', help: 'old-generation growth allowed between full GCs, % (V8 --heap-growing-percent); 10 holds 100,000 dialogs in ~280 MB instead of ~420 MB for ~10 % more CPU per call; 0 = V8\'s own', restart }),
  }),
  // Worker processes (src/edge/workers): 1 by default, see the README "Worker processes" for why.
  workers: key(int(0, 64), 1, { flag: 'workers', arg: 'N', help: 'worker processes sharing the listeners with SO_REUSEPORT (Node >= 22.12); 0 = one per core', restart }),
  shutdownTimeoutMs: key(int(0, 3_600_000), 30000, { flag: 'shutdown-timeout-ms', arg: 'MS', help: 'SIGTERM: drain deadline before exit' }),
  // Registrations through the edge (src/proxy/path.ts, keepalive.ts).
  registrar: section({
    set: optional(str({ minLength: 1 }), { flag: 'registrar-set', arg: 'SET', help: 'backend set public REGISTERs go to, by consistent hash of the AOR (default: the default set)', restart }),
  }),
  nat: section({
    keepalive: key(bool(), false, { flag: 'nat-keepalive', help: 'send keepalives to the flows of live registrations (holds NAT pinholes open)', restart }),
    keepaliveIntervalMs: key(int(1000, 3_600_000), 25000, { flag: 'nat-keepalive-interval-ms', arg: 'MS', help: 'time between keepalives to a registered flow', restart }),
    keepaliveMethod: key(oneOf(['options', 'crlf'] as const), 'options', { flag: 'nat-keepalive-method', arg: 'METHOD', help: 'UDP keepalive: options (an OPTIONS request) or crlf; connections always get CRLFCRLF', restart }),
    maxFlows: key(int(1, 10_000_000), 100000, { flag: 'nat-max-flows', arg: 'N', help: 'registered flows kept for keepalives at most', restart }),
  }),
  // tls:/wss: listeners and outgoing TLS (src/transport/tls.ts): SIGHUP re-reads the files, established connections stay.
  tls: section({
    certFile: optional(str(), { flag: 'tls-cert', arg: 'FILE', help: 'PEM certificate (leaf, then chain) for tls/wss listeners and as TLS client certificate' }),
    keyFile: optional(str(), { flag: 'tls-key', arg: 'FILE', help: 'PEM private key of tls.certFile' }),
    caFile: optional(str(), { flag: 'tls-ca', arg: 'FILE', help: "PEM CA bundle outgoing TLS verifies servers against (default: Node's roots)" }),
    clientCaFile: optional(str(), { flag: 'tls-client-ca', arg: 'FILE', help: 'PEM CAs for client certificates on client-cert require listeners (default: tls.caFile)' }),
    handshakeTimeoutMs: key(int(100, 600_000), 10000, { flag: 'tls-handshake-timeout-ms', arg: 'MS', help: 'drop TLS handshakes and WebSocket upgrades not done by then', restart }),
  }),
  // ws:/wss: listeners (RFC 7118, src/transport/ws.ts).
  ws: section({
    allowedOrigins: key(list((s) => (/^https?:\/\/[^\s/]+$/i.test(s) ? undefined : `"${s}" is not an origin (scheme://host[:port])`)), [], { flag: 'ws-allowed-origin', arg: 'ORIGIN', help: 'browser Origin allowed on ws/wss listeners (default any)', restart }),
    maxConnectionsPerSource: key(int(1, 1_000_000), 100, { flag: 'ws-max-connections-per-source', arg: 'N', help: 'WebSocket connections per source address', restart }),
    pingIntervalMs: key(int(1000, DAY_MS), 30000, { flag: 'ws-ping-interval-ms', arg: 'MS', help: 'WebSocket ping interval; no pong by the next one closes', restart }),
  }),
  // SDP and RTP anchored through rtpengine (src/media, docs/media.md). The NG socket and the ping timing are
  // fixed at start; the instance list, policy, flags and per-set modes apply on SIGHUP.
  media: section({
    mode: key(oneOf(MEDIA_MODES), 'off', { flag: 'media-mode', arg: 'MODE', help: 'media of backend sets not in media.sets: off (SDP untouched) or anchor (SDP and RTP through rtpengine)' }),
    rtpengine: key(rtpengineSpecs, [], { flag: 'media-rtpengine', arg: 'SPEC', env: 'SIPEDGE_MEDIA_RTPENGINE', help: 'rtpengine NG control address udp:IP:PORT[;weight=N]' }),
    onFailure: key(oneOf(['reject', 'passthrough'] as const), 'reject', { flag: 'media-on-failure', arg: 'POLICY', help: 'no rtpengine anchors the SDP: reject (the call gets media.rejectStatus) or passthrough (SDP as it is)' }),
    rejectStatus: key(int(400, 699), 503, { flag: 'media-reject-status', arg: 'CODE', help: 'status of a call rejected for its media' }),
    timeoutMs: key(int(10, 60_000), 1000, { flag: 'media-timeout-ms', arg: 'MS', help: 'one NG command, retransmissions included' }),
    retransmitMs: key(int(5, 60_000), 250, { flag: 'media-retransmit-ms', arg: 'MS', help: 'first NG retransmission (then doubling, same cookie)', restart }),
    maxOfferAttempts: key(int(1, 10), 2, { flag: 'media-max-offer-attempts', arg: 'N', help: 'rtpengine instances tried when an offer times out' }),
    interfaces: section({
      public: key(ngName(), 'external', { flag: 'media-interface-public', arg: 'NAME', help: 'rtpengine interface (--interface=NAME/IP) facing the public side' }),
      internal: key(ngName(), 'internal', { flag: 'media-interface-internal', arg: 'NAME', help: 'rtpengine interface facing the backends' }),
    }),
    replace: key(ngFlags, ['origin', 'session-connection'], { flag: 'media-replace', arg: 'WHAT', help: 'NG replace list for every offer and answer' }),
    iceInternal: key(ngName(true), 'remove', { flag: 'media-ice-internal', arg: 'ICE', help: "NG ICE toward the backends ('' sends none)" }),
    flags: key(ngFlags, [], { flag: 'media-flag', arg: 'FLAG', env: 'SIPEDGE_MEDIA_FLAGS', help: 'NG flag for every call' }),
    migrateOnDown: key(bool(), true, { flag: 'media-migrate-on-down', help: "calls of a dead rtpengine re-offer to the live one their Call-ID hashes to" }),
    localAddress: optional(str({ check: checkIp }), { flag: 'media-local-address', arg: 'IP', help: 'bind address of the NG socket', restart }),
    ping: section({
      intervalMs: key(int(100, 3_600_000), 5000, { flag: 'media-ping-interval-ms', arg: 'MS', help: 'time between NG pings of each rtpengine', restart }),
      timeoutMs: key(int(10, 60_000), 1000, { flag: 'media-ping-timeout-ms', arg: 'MS', help: 'NG ping answer deadline', restart }),
      failThreshold: key(int(1, 100), 3, { flag: 'media-ping-fail-threshold', arg: 'N', help: 'failed pings (or timed-out commands) before an rtpengine is down', restart }),
      okThreshold: key(int(1, 100), 2, { flag: 'media-ping-ok-threshold', arg: 'N', help: 'good pings before it is up again', restart }),
    }),
    sets: key(mediaSets(), {}, { flag: 'media-set', arg: 'SET=MODE', env: 'SIPEDGE_MEDIA_SETS', help: 'media mode of one backend set, SET=off|anchor (YAML: also flags and extra NG keys per set)' }),
  }),
} satisfies Shape

// ---------------------------------------------------------------------------------------------------------
// Derived: the type, the defaults, the flags, the restart-only keys
// ---------------------------------------------------------------------------------------------------------

type ValueOf<E> = E extends Key<infer T, boolean> ? T : E extends Section<infer S, boolean> ? ConfigOf<S> : never
type OptionalNames<S> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S]
type Simplify<T> = { [K in keyof T]: T[K] } & {}
export type ConfigOf<S> = Simplify<
  { -readonly [K in Exclude<keyof S, OptionalNames<S>>]: ValueOf<S[K]> } & { -readonly [K in OptionalNames<S>]?: ValueOf<S[K]> }
>

/** The complete, validated configuration of an edge. */
export type EdgeConfig = ConfigOf<typeof CONFIG>
export type EtcdConfig = NonNullable<EdgeConfig['etcd']>

export interface FlagSpec {
  /** Without the leading `--`. */
  flag: string
  /** Dotted path into EdgeConfig (`probe.intervalMs`). */
  key: string
  type: FlagType
  /** May be given several times (values accumulate); lists also split on commas. */
  multiple?: boolean
  env: string
  arg?: string
  help: string
  restart: boolean
  secret: boolean
  docDefault?: string
}

/** Every key with its dotted path, in table order. */
export function eachKey(shape: Shape = CONFIG, prefix = ''): Array<{ path: string; key: Key<unknown, boolean> }> {
  return Object.entries(shape).flatMap(([name, e]) =>
    e.type === 'key' ? [{ path: prefix + name, key: e as Key<unknown, boolean> }] : eachKey(e.keys as Shape, `${prefix}${name}.`),
  )
}

export const FLAGS: readonly FlagSpec[] = eachKey().map(({ path, key: k }) => {
  const m = k.meta
  const multiple = k.field.kind === 'list' || k.field.kind === 'int-list' || k.field.kind === 'map'
  return {
    flag: m.flag,
    key: path,
    type: k.field.kind,
    ...(multiple ? { multiple } : {}),
    env: m.env ?? `SIPEDGE_${m.flag.toUpperCase().replace(/-/g, '_')}`,
    ...(m.arg ? { arg: m.arg } : {}),
    help: m.help,
    restart: m.restart === true,
    secret: m.secret === true,
    ...(m.docDefault ? { docDefault: m.docDefault } : {}),
  }
})

/**
 * What a running edge cannot change (SIGHUP names them in a warning): a top-level key when all of it is
 * restart-only (`listen`, `limits`), else the dotted keys that are (`media.localAddress`).
 */
export const RESTART_KEYS: readonly string[] = [...new Set(FLAGS.flatMap((f) => {
  if (!f.restart) return []
  const top = f.key.split('.')[0]!
  return FLAGS.every((g) => g.key.split('.')[0] !== top || g.restart) ? [top] : [f.key]
}))]

/** Defaults of an optional section's keys, applied when the section appears (etcd.prefix, hep.id). */
export function sectionDefaults(name: string): Record<string, unknown> {
  const e = (CONFIG as Shape)[name]
  if (e?.type !== 'section') return {}
  return Object.fromEntries(Object.entries(e.keys as Shape).flatMap(([k, v]) => (v.type === 'key' && v.default !== undefined ? [[k, v.default]] : [])))
}

function defaultsOf(shape: Shape): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, e] of Object.entries(shape)) {
    if (e.type === 'section') {
      if (!e.optional) out[name] = defaultsOf(e.keys as Shape)
    } else if (e.default !== undefined) out[name] = e.default
  }
  return out
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

/** The built-in layer. `secret` is empty here: a random one is generated (with a warning) when none is set. */
export const DEFAULT_CONFIG: EdgeConfig = deepFreeze(structuredClone(defaultsOf(CONFIG))) as EdgeConfig
