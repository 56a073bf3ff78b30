/**
 * The one configuration model of the edge. Every key can come from four layers, later ones winning:
 * built-in defaults < `SIPEDGE_*` environment < YAML file (`--config`) < command-line flags.
 * YAML keys are the camelCase names of EdgeConfig; flags are their kebab-case names (see FLAGS, which
 * also drives `--help`). Validation is strict and every error names the key and the problem.
 * Nothing here is on the hot path: regexes and allocations are fine.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP, isIPv4 } from 'node:net'
import { parseDocument } from 'yaml'
import type { Algorithm, BackendSpec } from '../dispatch/types.js'
import { StaticBackendError, staticBackends } from '../discovery/static.js'
import { parseListenSpec as parseTransportListenSpec } from '../transport/listen-spec.js'
import type { ListenSpec, Side } from '../transport/types.js'
import { DEFAULT_PREFIX as ETCD_DEFAULT_PREFIX } from '../discovery/backend_value.js'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface EtcdConfig {
  endpoints: string[]
  prefix: string
  username?: string
  password?: string
  cacert?: string
  cert?: string
  key?: string
}

export interface EdgeConfig {
  /** Public side listeners: `proto:host[:port][ advertise host[:port]]`. */
  listen: string[]
  /** Internal side listeners (where backends live); [] = the public sockets serve both sides. */
  internalListen: string[]
  /** Static backends: `[set=NAME:]sip:host[:port][;weight=N][;priority=N][;transport=tcp]`. */
  backends: string[]
  algorithm: Algorithm
  /** Per-set algorithm overriding `algorithm`. */
  setAlgorithms: Record<string, Algorithm>
  /** Key for the Record-Route/Contact tokens. Empty in DEFAULT_CONFIG: a random one is generated. */
  secret: string
  etcd?: EtcdConfig
  probe: { intervalMs: number; timeoutMs: number; failThreshold: number; okThreshold: number; enabled: boolean }
  /** inviteTimeoutMs: no provisional from a backend within this -> try the next one (Kamailio fr_timer). */
  failover: { maxTries: number; inviteTimeoutMs: number; codes: number[] }
  /** Outbound gateway URI for calls from backends to the outside. */
  trunk?: string
  /** CIDRs allowed to send calls outward (besides the internal side). */
  trustedNetworks: string[]
  allowPublic: string[]
  denyPublic: string[]
  allowInternal: string[]
  denyInternal: string[]
  /** Per-source request rate limit; rps 0 = off. */
  rateLimit: { rps: number; burst: number; action: 'reply' | 'drop' }
  maskCallId: boolean
  /** Admin HTTP listen address `host:port`; unset = no admin server. */
  admin?: string
  adminToken?: string
  /** HEP3 collector, `udp:host:port`. */
  hep?: { address: string; id: number; password?: string }
  logLevel: LogLevel
  /** Per-component levels, e.g. `{ proxy: 'debug' }`. */
  logLevels: Record<string, LogLevel>
  limits: {
    maxMessageSize: number
    maxConnections: number
    tcpIdleTimeoutMs: number
    maxDialogs: number
    dialogTtlS: number
    maxTransactions: number
  }
  shutdownTimeoutMs: number
  /** Certificates for tls:/wss: listeners and outgoing TLS (PEM files, re-read on SIGHUP). */
  tls: { certFile?: string; keyFile?: string; caFile?: string; clientCaFile?: string; handshakeTimeoutMs: number }
  /** WebSocket listeners (RFC 7118). */
  ws: { allowedOrigins: string[]; maxConnectionsPerSource: number; pingIntervalMs: number }
}

export const DEFAULT_CONFIG: EdgeConfig = deepFreeze({
  listen: ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'],
  internalListen: [],
  backends: [],
  algorithm: 'round-robin',
  setAlgorithms: {},
  secret: '',
  probe: { intervalMs: 5000, timeoutMs: 2000, failThreshold: 3, okThreshold: 2, enabled: true },
  failover: { maxTries: 3, inviteTimeoutMs: 2000, codes: [408, 500, 503] },
  trustedNetworks: [],
  allowPublic: [],
  denyPublic: [],
  allowInternal: [],
  denyInternal: [],
  rateLimit: { rps: 0, burst: 100, action: 'reply' },
  maskCallId: false,
  logLevel: 'info',
  logLevels: {},
  limits: {
    maxMessageSize: 65535,
    maxConnections: 10000,
    tcpIdleTimeoutMs: 120000,
    maxDialogs: 100000,
    dialogTtlS: 43200,
    maxTransactions: 200000,
  },
  shutdownTimeoutMs: 30000,
  tls: { handshakeTimeoutMs: 10000 },
  ws: { allowedOrigins: [], maxConnectionsPerSource: 100, pingIntervalMs: 30000 },
}) as EdgeConfig

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

const ETCD_DEFAULTS = { prefix: ETCD_DEFAULT_PREFIX }
const HEP_DEFAULTS = { id: 1 }

export const ALGORITHMS: readonly Algorithm[] = ['round-robin', 'weighted', 'hash-callid', 'hash-from-user', 'least-calls']
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

// ---------------------------------------------------------------------------------------------
// Address syntaxes (exported: the transports, discovery and admin server parse the same strings)
// ---------------------------------------------------------------------------------------------

/** `host:port`, `[v6]:port` or (portOptional) a bare host. IP literals only: no DNS at runtime. */
export function parseHostPort(s: string, defaultPort?: number): { host: string; port: number } | undefined {
  let host: string
  let rest: string
  if (s.startsWith('[')) {
    const close = s.indexOf(']')
    if (close < 0) return undefined
    host = s.slice(1, close)
    rest = s.slice(close + 1)
    if (isIP(host) !== 6) return undefined
  } else {
    const colon = s.indexOf(':')
    host = colon < 0 ? s : s.slice(0, colon)
    rest = colon < 0 ? '' : s.slice(colon)
    if (!isIPv4(host)) return undefined
  }
  if (rest === '') return defaultPort === undefined ? undefined : { host, port: defaultPort }
  if (!/^:\d{1,5}$/.test(rest)) return undefined
  const port = Number(rest.slice(1))
  if (port > 65535) return undefined
  return { host, port }
}

/**
 * `udp:127.0.0.1:5060`, `tcp:[::1]`, `udp:0.0.0.0:5060 advertise 203.0.113.7:5060`: the syntax of
 * transport/listen-spec.ts (the parser the transports use), with its error as a string.
 */
export function parseListenSpec(s: string, side: Side): ListenSpec | string {
  try {
    return parseTransportListenSpec(s, side)
  } catch (err) {
    const detail = (err as Error).message.replace(/^listen spec '[^']*': /, '')
    const base = `"${s}" is not proto:host[:port] [advertise host[:port]]`
    return detail.startsWith('expected') ? `${base} (proto udp|tcp|tls|ws|wss, host an IP literal)` : `${base}: ${detail}`
  }
}

/**
 * A static backend: `[set=NAME:]sip:host[:port][;weight=N][;priority=N][;transport=udp|tcp]`.
 * The URI rules, canonical form and id come from discovery/static.ts (the one parser of backend
 * URIs); this adds the `set=NAME:` prefix that lets one flag list carry several sets.
 */
export function parseBackendSpec(s: string): BackendSpec | string {
  let set = 'default'
  let rest = s
  const setMatch = /^set=([^:]*):(.*)$/.exec(s)
  if (setMatch) {
    set = setMatch[1]!
    rest = setMatch[2]!
    if (!/^[A-Za-z0-9_.-]+$/.test(set)) return `"${s}": set name "${set}" must be letters, digits, _ . -`
  }
  try {
    return staticBackends([rest], set)[0]!
  } catch (err) {
    if (err instanceof StaticBackendError) return `"${s}": ${err.message.replace(/^invalid backend "[^"]*": /, '')}`
    throw err
  }
}

/** `10.0.0.0/8`, `192.0.2.7` (= /32), `fd00::/8`. */
export function parseCidr(s: string): { family: 4 | 6; address: string; bits: number } | string {
  const slash = s.indexOf('/')
  const address = slash < 0 ? s : s.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return `"${s}" is not a CIDR (address[/bits])`
  const max = family === 4 ? 32 : 128
  let bits = max
  if (slash >= 0) {
    const b = s.slice(slash + 1)
    if (!/^\d{1,3}$/.test(b) || Number(b) > max) return `"${s}": prefix length must be 0..${max}`
    bits = Number(b)
  }
  return { family: family as 4 | 6, address, bits }
}

function checkTrunk(s: string): string | undefined {
  // sip:[user@]host[:port][;params] where host is an IP literal: the edge does no DNS for next hops.
  const m = /^sips?:(?:[^@;]+@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:;[^;]+)*$/.exec(s)
  const problem = `"${s}" is not a SIP URI (sip:[user@]host[:port][;params])`
  if (!m) return problem
  const host = m[1]!
  if (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6) return problem
  if (!host.startsWith('[') && isIP(host) !== 4) return `"${s}": the host must be an IP literal (the edge does not resolve names for next hops)`
  if (m[2] !== undefined && Number(m[2]) > 65535) return `"${s}": port must be 0..65535`
  return undefined
}

function checkAdminAddress(s: string): string | undefined {
  return parseHostPort(s) ? undefined : `"${s}" is not host:port (host an IP literal, e.g. 127.0.0.1:8080)`
}

function checkHepAddress(s: string): string | undefined {
  const body = s.startsWith('udp:') ? s.slice(4) : s
  return parseHostPort(body) ? undefined : `"${s}" is not udp:host:port (host an IP literal, e.g. udp:127.0.0.1:9060)`
}

/** Accepts `http(s)://host:port` or bare `host:port`; returns the normalised URL or an error. */
function normaliseEtcdEndpoint(s: string): { value: string } | string {
  const url = /^[a-z]+:\/\//i.test(s) ? s : `http://${s}`
  try {
    const u = new URL(url)
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || u.pathname.length > 1) {
      return `"${s}" is not an etcd endpoint (http[s]://host:port)`
    }
    return { value: `${u.protocol}//${u.host}` }
  } catch {
    return `"${s}" is not an etcd endpoint (http[s]://host:port)`
  }
}

// ---------------------------------------------------------------------------------------------
// Schema: one description per key drives YAML validation, env/flag conversion and --help.
// ---------------------------------------------------------------------------------------------

type Check = (s: string) => string | undefined
type Field =
  | { kind: 'string'; check?: Check; minLength?: number; optional?: true }
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'list'; check: (s: string, index: number) => string | undefined; normalise?: (s: string) => { value: string } | string }
  | { kind: 'int-list'; min: number; max: number }
  | { kind: 'map'; keyPattern: RegExp; values: readonly string[] }
  | { kind: 'object'; fields: Record<string, Field>; optional?: true; required?: string[] }

const listenCheck = (side: Side) => (s: string) => {
  const r = parseListenSpec(s, side)
  return typeof r === 'string' ? r : undefined
}
const backendCheck = (s: string) => {
  const r = parseBackendSpec(s)
  return typeof r === 'string' ? r : undefined
}
const cidrCheck = (s: string) => {
  const r = parseCidr(s)
  return typeof r === 'string' ? r : undefined
}
const cidrList: Field = { kind: 'list', check: cidrCheck }
const DAY_MS = 86_400_000

const SCHEMA: Record<string, Field> = {
  listen: { kind: 'list', check: listenCheck('public') },
  internalListen: { kind: 'list', check: listenCheck('internal') },
  backends: { kind: 'list', check: backendCheck },
  algorithm: { kind: 'enum', values: ALGORITHMS },
  setAlgorithms: { kind: 'map', keyPattern: /^[A-Za-z0-9_.-]+$/, values: ALGORITHMS },
  secret: { kind: 'string', minLength: 16 },
  etcd: {
    kind: 'object',
    optional: true,
    required: ['endpoints'],
    fields: {
      endpoints: { kind: 'list', check: () => undefined, normalise: normaliseEtcdEndpoint },
      prefix: { kind: 'string', minLength: 1, check: (s) => (s.startsWith('/') && s.endsWith('/') ? undefined : `"${s}" must start and end with /`) },
      username: { kind: 'string', optional: true },
      password: { kind: 'string', optional: true },
      cacert: { kind: 'string', optional: true },
      cert: { kind: 'string', optional: true },
      key: { kind: 'string', optional: true },
    },
  },
  probe: {
    kind: 'object',
    fields: {
      intervalMs: { kind: 'int', min: 100, max: 3_600_000 },
      timeoutMs: { kind: 'int', min: 50, max: 60_000 },
      failThreshold: { kind: 'int', min: 1, max: 100 },
      okThreshold: { kind: 'int', min: 1, max: 100 },
      enabled: { kind: 'bool' },
    },
  },
  failover: {
    kind: 'object',
    fields: {
      maxTries: { kind: 'int', min: 1, max: 16 },
      inviteTimeoutMs: { kind: 'int', min: 100, max: 180_000 },
      codes: { kind: 'int-list', min: 300, max: 699 },
    },
  },
  trunk: { kind: 'string', optional: true, check: checkTrunk },
  trustedNetworks: cidrList,
  allowPublic: cidrList,
  denyPublic: cidrList,
  allowInternal: cidrList,
  denyInternal: cidrList,
  rateLimit: {
    kind: 'object',
    fields: {
      rps: { kind: 'int', min: 0, max: 1_000_000 },
      burst: { kind: 'int', min: 1, max: 10_000_000 },
      action: { kind: 'enum', values: ['reply', 'drop'] },
    },
  },
  maskCallId: { kind: 'bool' },
  admin: { kind: 'string', optional: true, check: checkAdminAddress },
  adminToken: { kind: 'string', optional: true, minLength: 8 },
  hep: {
    kind: 'object',
    optional: true,
    required: ['address'],
    fields: {
      address: { kind: 'string', check: checkHepAddress },
      id: { kind: 'int', min: 0, max: 0xffffffff },
      password: { kind: 'string', optional: true },
    },
  },
  logLevel: { kind: 'enum', values: LOG_LEVELS },
  logLevels: { kind: 'map', keyPattern: /^[a-z][a-z0-9_-]*$/, values: LOG_LEVELS },
  limits: {
    kind: 'object',
    fields: {
      maxMessageSize: { kind: 'int', min: 1500, max: 1_048_576 },
      maxConnections: { kind: 'int', min: 1, max: 1_000_000 },
      tcpIdleTimeoutMs: { kind: 'int', min: 1000, max: DAY_MS },
      maxDialogs: { kind: 'int', min: 1, max: 10_000_000 },
      dialogTtlS: { kind: 'int', min: 60, max: 7 * 86_400 },
      maxTransactions: { kind: 'int', min: 1, max: 10_000_000 },
    },
  },
  shutdownTimeoutMs: { kind: 'int', min: 0, max: 3_600_000 },
  tls: {
    kind: 'object',
    fields: {
      certFile: { kind: 'string', optional: true },
      keyFile: { kind: 'string', optional: true },
      caFile: { kind: 'string', optional: true },
      clientCaFile: { kind: 'string', optional: true },
      handshakeTimeoutMs: { kind: 'int', min: 100, max: 600_000 },
    },
  },
  ws: {
    kind: 'object',
    fields: {
      allowedOrigins: { kind: 'list', check: (s) => (/^https?:\/\/[^\s/]+$/i.test(s) ? undefined : `"${s}" is not an origin (scheme://host[:port])`) },
      maxConnectionsPerSource: { kind: 'int', min: 1, max: 1_000_000 },
      pingIntervalMs: { kind: 'int', min: 1000, max: DAY_MS },
    },
  },
}

/** Keys that can't be applied to a running edge (sockets, sizes of tables, the token secret). */
export const RESTART_KEYS: readonly string[] = ['listen', 'internalListen', 'secret', 'admin', 'limits', 'etcd', 'ws']

// ---------------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------------

export type FlagType = 'string' | 'int' | 'boolean' | 'list' | 'int-list' | 'map'
export interface FlagSpec {
  /** Without the leading `--`. */
  flag: string
  /** Dotted path into EdgeConfig (`probe.intervalMs`). */
  key: string
  type: FlagType
  /** May be given several times (values accumulate); lists also split on commas. */
  multiple?: boolean
  /** Environment variable read for this key. */
  env: string
  /** Placeholder shown in --help. */
  arg?: string
  help: string
}

function flag(flag: string, key: string, help: string, extra: Partial<FlagSpec> = {}): FlagSpec {
  const field = fieldAt(key)
  const type: FlagType =
    field.kind === 'bool' ? 'boolean'
    : field.kind === 'int' ? 'int'
    : field.kind === 'list' ? 'list'
    : field.kind === 'int-list' ? 'int-list'
    : field.kind === 'map' ? 'map'
    : 'string'
  const multiple = type === 'list' || type === 'int-list' || type === 'map' ? true : undefined
  const env = `SIPEDGE_${flag.toUpperCase().replace(/-/g, '_')}`
  return { flag, key, type, ...(multiple ? { multiple } : {}), env, help, ...extra }
}

function fieldAt(path: string): Field {
  const parts = path.split('.')
  let field: Field | undefined = SCHEMA[parts[0]!]
  for (const p of parts.slice(1)) field = field?.kind === 'object' ? field.fields[p] : undefined
  if (!field) throw new Error(`config schema has no key ${path}`)
  return field
}

export const FLAGS: readonly FlagSpec[] = [
  flag('listen', 'listen', 'public listener proto:host[:port][ advertise host[:port]]', { arg: 'SPEC' }),
  flag('internal-listen', 'internalListen', 'internal-side listener (backends); default: the public ones', { arg: 'SPEC' }),
  flag('backend', 'backends', 'static backend [set=NAME:]sip:host[:port][;weight=N][;priority=N]', { arg: 'URI', env: 'SIPEDGE_BACKENDS' }),
  flag('algorithm', 'algorithm', `dispatch algorithm: ${ALGORITHMS.join('|')}`, { arg: 'ALG' }),
  flag('set-algorithm', 'setAlgorithms', 'algorithm for one set, SET=ALG', { arg: 'SET=ALG', env: 'SIPEDGE_SET_ALGORITHMS' }),
  flag('secret', 'secret', 'key for Record-Route/Contact tokens (>= 16 chars; same on every edge)', { arg: 'KEY' }),
  flag('etcd', 'etcd.endpoints', 'etcd endpoint(s) for backend discovery, http://host:port', { arg: 'URL' }),
  flag('etcd-prefix', 'etcd.prefix', `etcd key prefix (default ${ETCD_DEFAULTS.prefix})`, { arg: 'PREFIX' }),
  flag('etcd-username', 'etcd.username', 'etcd user', { arg: 'USER' }),
  flag('etcd-password', 'etcd.password', 'etcd password (prefer SIPEDGE_ETCD_PASSWORD)', { arg: 'PASS' }),
  flag('etcd-cacert', 'etcd.cacert', 'CA certificate file for etcd TLS', { arg: 'FILE' }),
  flag('etcd-cert', 'etcd.cert', 'client certificate file for etcd TLS', { arg: 'FILE' }),
  flag('etcd-key', 'etcd.key', 'client key file for etcd TLS', { arg: 'FILE' }),
  flag('probe', 'probe.enabled', 'OPTIONS health probes (--no-probe to disable)'),
  flag('probe-interval-ms', 'probe.intervalMs', 'time between OPTIONS probes', { arg: 'MS' }),
  flag('probe-timeout-ms', 'probe.timeoutMs', 'probe answer deadline (< interval)', { arg: 'MS' }),
  flag('probe-fail-threshold', 'probe.failThreshold', 'failed probes before a backend is down', { arg: 'N' }),
  flag('probe-ok-threshold', 'probe.okThreshold', 'good probes before a backend is up again', { arg: 'N' }),
  flag('failover-max-tries', 'failover.maxTries', 'backends tried per INVITE', { arg: 'N' }),
  flag('failover-invite-timeout-ms', 'failover.inviteTimeoutMs', 'no provisional within this -> next backend', { arg: 'MS' }),
  flag('failover-codes', 'failover.codes', 'final responses that trigger failover', { arg: 'CODES' }),
  flag('trunk', 'trunk', 'outbound gateway URI for calls from backends', { arg: 'URI' }),
  flag('trusted-network', 'trustedNetworks', 'CIDR allowed to send calls outward', { arg: 'CIDR', env: 'SIPEDGE_TRUSTED_NETWORKS' }),
  flag('allow-public', 'allowPublic', 'CIDR allowed on the public side (default all)', { arg: 'CIDR' }),
  flag('deny-public', 'denyPublic', 'CIDR refused on the public side', { arg: 'CIDR' }),
  flag('allow-internal', 'allowInternal', 'CIDR allowed on the internal side (default all)', { arg: 'CIDR' }),
  flag('deny-internal', 'denyInternal', 'CIDR refused on the internal side', { arg: 'CIDR' }),
  flag('rate-limit-rps', 'rateLimit.rps', 'requests per second per source, 0 = off', { arg: 'N' }),
  flag('rate-limit-burst', 'rateLimit.burst', 'token bucket size per source', { arg: 'N' }),
  flag('rate-limit-action', 'rateLimit.action', 'over the limit: reply (503) or drop', { arg: 'ACTION' }),
  flag('mask-call-id', 'maskCallId', 'mask the Call-ID of calls placed by backends toward the public side (restored on the way back)'),
  flag('admin', 'admin', 'admin HTTP server host:port (metrics, health, backends)', { arg: 'ADDR' }),
  flag('admin-token', 'adminToken', 'bearer token for the admin API (prefer SIPEDGE_ADMIN_TOKEN)', { arg: 'TOKEN' }),
  flag('hep', 'hep.address', 'HEP3 collector udp:host:port (Homer, sngrep -L)', { arg: 'ADDR' }),
  flag('hep-id', 'hep.id', 'HEP capture agent id', { arg: 'N' }),
  flag('hep-password', 'hep.password', 'HEP authentication key', { arg: 'PASS' }),
  flag('log-level', 'logLevel', `log level: ${LOG_LEVELS.join('|')}`, { arg: 'LEVEL' }),
  flag('component-log-level', 'logLevels', 'level for one component, COMPONENT=LEVEL', { arg: 'C=LEVEL', env: 'SIPEDGE_LOG_LEVELS' }),
  flag('max-message-size', 'limits.maxMessageSize', 'largest SIP message accepted (bytes)', { arg: 'BYTES' }),
  flag('max-connections', 'limits.maxConnections', 'TCP connections at most', { arg: 'N' }),
  flag('tcp-idle-timeout-ms', 'limits.tcpIdleTimeoutMs', 'close idle TCP connections after', { arg: 'MS' }),
  flag('max-dialogs', 'limits.maxDialogs', 'dialog cache size', { arg: 'N' }),
  flag('dialog-ttl-s', 'limits.dialogTtlS', 'dialog cache entry lifetime without traffic', { arg: 'S' }),
  flag('max-transactions', 'limits.maxTransactions', 'transactions at most (then 503)', { arg: 'N' }),
  flag('shutdown-timeout-ms', 'shutdownTimeoutMs', 'SIGTERM: drain deadline before exit', { arg: 'MS' }),
  flag('tls-cert', 'tls.certFile', 'PEM certificate (leaf, then chain) for tls/wss listeners and as TLS client certificate', { arg: 'FILE' }),
  flag('tls-key', 'tls.keyFile', 'PEM private key of tls.certFile', { arg: 'FILE' }),
  flag('tls-ca', 'tls.caFile', 'PEM CA bundle outgoing TLS verifies servers against (default: Node\'s roots)', { arg: 'FILE' }),
  flag('tls-client-ca', 'tls.clientCaFile', 'PEM CAs for client certificates on client-cert require listeners (default: tls.caFile)', { arg: 'FILE' }),
  flag('tls-handshake-timeout-ms', 'tls.handshakeTimeoutMs', 'drop TLS handshakes and WebSocket upgrades not done by then', { arg: 'MS' }),
  flag('ws-allowed-origin', 'ws.allowedOrigins', 'browser Origin allowed on ws/wss listeners (default any)', { arg: 'ORIGIN' }),
  flag('ws-max-connections-per-source', 'ws.maxConnectionsPerSource', 'WebSocket connections per source address', { arg: 'N' }),
  flag('ws-ping-interval-ms', 'ws.pingIntervalMs', 'WebSocket ping interval; no pong by the next one closes', { arg: 'MS' }),
]

/** Flags that are not config keys. */
export const COMMAND_FLAGS = [
  { flag: 'config', arg: 'FILE', help: 'YAML config file (env SIPEDGE_CONFIG)' },
  { flag: 'help', help: 'print this help' },
  { flag: 'version', help: 'print the version' },
] as const

const SECRET_FLAGS = new Set(['secret', 'admin-token', 'etcd-password', 'hep-password'])

/** The `--help` options block, generated from FLAGS. */
export function flagsHelp(): string {
  const rows: Array<[string, string]> = []
  for (const c of COMMAND_FLAGS) rows.push([`--${c.flag}${'arg' in c ? ` ${c.arg}` : ''}`, c.help])
  for (const f of FLAGS) {
    const left = f.type === 'boolean' ? `--[no-]${f.flag}` : `--${f.flag} ${f.arg ?? 'VALUE'}`
    const def = defaultText(f.key)
    rows.push([left, `${f.help}${f.multiple ? ' (repeatable, or comma list)' : ''}${def}  [${f.env}]`])
  }
  const width = Math.max(...rows.map((r) => r[0].length)) + 2
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`).join('\n')
}

function defaultText(key: string): string {
  let v: unknown = DEFAULT_CONFIG
  for (const p of key.split('.')) v = (v as Record<string, unknown> | undefined)?.[p]
  if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) return ''
  if (typeof v === 'object' && !Array.isArray(v)) return ''
  return ` (default ${Array.isArray(v) ? v.join(',') : String(v)})`
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

interface Problem {
  path: string
  problem: string
}

const show = (v: unknown): string => (typeof v === 'string' ? `"${v}"` : JSON.stringify(v) ?? String(v))
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

function kebabToCamel(s: string): string {
  return s.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase())
}

/** Validates one layer's value for one field; returns the cleaned value (undefined = unset). */
function checkField(field: Field, value: unknown, path: string, out: Problem[]): unknown {
  const fail = (problem: string): undefined => {
    out.push({ path, problem })
    return undefined
  }
  if (value === null) {
    return (field.kind === 'object' || field.kind === 'string') && field.optional ? null : fail('must not be null')
  }
  switch (field.kind) {
    case 'string': {
      if (typeof value !== 'string') return fail(`${show(value)} must be a string`)
      if (field.minLength !== undefined && value.length < field.minLength) {
        return fail(`must be at least ${field.minLength} characters`)
      }
      const p = field.check?.(value)
      return p ? fail(p) : value
    }
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) return fail(`${show(value)} must be an integer`)
      if (value < field.min || value > field.max) return fail(`${value} is out of range ${field.min}..${field.max}`)
      return value
    case 'bool':
      return typeof value === 'boolean' ? value : fail(`${show(value)} must be true or false`)
    case 'enum':
      return typeof value === 'string' && field.values.includes(value)
        ? value
        : fail(`${show(value)} must be one of ${field.values.join(', ')}`)
    case 'list': {
      if (!Array.isArray(value)) return fail(`${show(value)} must be a list`)
      const result: string[] = []
      value.forEach((item, i) => {
        if (typeof item !== 'string') return out.push({ path: `${path}[${i}]`, problem: `${show(item)} must be a string` })
        let v = item
        if (field.normalise) {
          const n = field.normalise(item)
          if (typeof n === 'string') return out.push({ path: `${path}[${i}]`, problem: n })
          v = n.value
        }
        const p = field.check(v, i)
        if (p) return out.push({ path: `${path}[${i}]`, problem: p })
        result.push(v)
      })
      return result
    }
    case 'int-list': {
      if (!Array.isArray(value)) return fail(`${show(value)} must be a list of integers`)
      value.forEach((item, i) => {
        if (typeof item !== 'number' || !Number.isInteger(item)) {
          out.push({ path: `${path}[${i}]`, problem: `${show(item)} must be an integer` })
        } else if (item < field.min || item > field.max) {
          out.push({ path: `${path}[${i}]`, problem: `${item} is out of range ${field.min}..${field.max}` })
        }
      })
      return value
    }
    case 'map': {
      if (!isPlainObject(value)) return fail(`${show(value)} must be a mapping of name: value`)
      const result: Record<string, string> = {}
      for (const [k, v] of Object.entries(value)) {
        if (!field.keyPattern.test(k)) out.push({ path: `${path}.${k}`, problem: `"${k}" is not a valid name` })
        else if (typeof v !== 'string' || !field.values.includes(v)) {
          out.push({ path: `${path}.${k}`, problem: `${show(v)} must be one of ${field.values.join(', ')}` })
        } else result[k] = v
      }
      return result
    }
    case 'object': {
      if (!isPlainObject(value)) return fail(`${show(value)} must be a mapping`)
      const result: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value)) {
        const sub = field.fields[k]
        if (!sub) {
          out.push({ path: `${path}.${k}`, problem: unknownKeyProblem(k, Object.keys(field.fields)) })
          continue
        }
        const cleaned = checkField(sub, v, `${path}.${k}`, out)
        if (cleaned !== undefined) result[k] = cleaned
      }
      return result
    }
  }
}

function unknownKeyProblem(key: string, known: string[]): string {
  const camel = kebabToCamel(key)
  if (camel !== key && known.includes(camel)) return `unknown key (did you mean ${camel}? YAML keys are camelCase)`
  const lower = key.toLowerCase()
  const near = known.find((k) => k.toLowerCase() === lower)
  return near ? `unknown key (did you mean ${near}?)` : 'unknown key'
}

type Layer = Record<string, unknown>

/** Checks the shape of one (partial) layer; unknown keys and wrong types are problems. */
function checkLayer(raw: unknown, out: Problem[]): Layer {
  if (raw === undefined || raw === null) return {}
  if (!isPlainObject(raw)) {
    out.push({ path: '(top level)', problem: 'must be a mapping of keys to values' })
    return {}
  }
  const layer: Layer = {}
  for (const [k, v] of Object.entries(raw)) {
    const field = SCHEMA[k]
    if (!field) {
      out.push({ path: k, problem: unknownKeyProblem(k, Object.keys(SCHEMA)) })
      continue
    }
    const cleaned = checkField(field, v, k, out)
    if (cleaned !== undefined) layer[k] = cleaned
  }
  return layer
}

/** Applies a checked layer over a config: nested objects and maps merge, lists and scalars replace, null unsets. */
function applyLayer(base: Record<string, unknown>, layer: Layer): void {
  for (const [k, v] of Object.entries(layer)) {
    const field = SCHEMA[k]!
    if (v === null) delete base[k]
    else if (field.kind === 'object' || field.kind === 'map') {
      const defaults = k === 'etcd' ? ETCD_DEFAULTS : k === 'hep' ? HEP_DEFAULTS : {}
      base[k] = { ...defaults, ...(base[k] as object | undefined), ...(v as object) }
    } else base[k] = v
  }
}

function cloneDefaults(): Record<string, unknown> {
  return structuredClone(DEFAULT_CONFIG) as unknown as Record<string, unknown>
}

/** Rules that involve several keys, checked on the merged result. */
function crossCheck(c: EdgeConfig, out: Problem[], warnings: string[]): void {
  for (const key of ['etcd', 'hep'] as const) {
    const obj = c[key] as Record<string, unknown> | undefined
    const field = SCHEMA[key] as Extract<Field, { kind: 'object' }>
    for (const r of field.required ?? []) {
      if (obj && obj[r] === undefined) out.push({ path: `${key}.${r}`, problem: `is required when ${key} is configured` })
    }
  }
  if (c.etcd?.endpoints?.length === 0) out.push({ path: 'etcd.endpoints', problem: 'must list at least one endpoint' })
  if (c.listen.length === 0) out.push({ path: 'listen', problem: 'must list at least one listener' })
  const seen = new Map<string, string>()
  const sockets = [
    ...c.listen.map((s, i) => [s, `listen[${i}]`, 'public'] as const),
    ...c.internalListen.map((s, i) => [s, `internalListen[${i}]`, 'internal'] as const),
  ]
  let secureListener: string | undefined
  for (const [s, path, side] of sockets) {
    const spec = parseListenSpec(s, side)
    if (typeof spec === 'string') continue
    if (spec.proto === 'tls' || spec.proto === 'wss') secureListener ??= path
    const k = `${spec.proto}:${spec.host}:${spec.port}`
    const prev = seen.get(k)
    if (prev && spec.port !== 0) out.push({ path, problem: `"${s}" is already used by ${prev}` })
    else seen.set(k, path)
  }
  if (secureListener !== undefined && (c.tls.certFile === undefined || c.tls.keyFile === undefined)) {
    out.push({ path: c.tls.certFile === undefined ? 'tls.certFile' : 'tls.keyFile', problem: `is required by the TLS listener ${secureListener}` })
  }
  const ids = new Map<string, number>()
  c.backends.forEach((s, i) => {
    const b = parseBackendSpec(s)
    if (typeof b === 'string') return
    const key = `${b.set}/${b.id}`
    const prev = ids.get(key)
    if (prev !== undefined) out.push({ path: `backends[${i}]`, problem: `"${s}" duplicates backends[${prev}] in set ${b.set}` })
    else ids.set(key, i)
  })
  if (c.probe.timeoutMs >= c.probe.intervalMs) {
    out.push({ path: 'probe.timeoutMs', problem: `${c.probe.timeoutMs} must be less than probe.intervalMs (${c.probe.intervalMs})` })
  }
  if (c.backends.length === 0 && !c.etcd) {
    warnings.push('no backends configured (backends or etcd): every new call will be answered 503')
  }
  if (!c.etcd) {
    const sets = new Set([...ids.keys()].map((id) => id.slice(0, id.indexOf('/'))))
    for (const s of Object.keys(c.setAlgorithms)) {
      if (!sets.has(s)) warnings.push(`setAlgorithms.${s}: no static backend is in set "${s}"`)
    }
  }
  if (c.admin && !c.adminToken) {
    const hp = parseHostPort(c.admin)
    if (hp && !(hp.host.startsWith('127.') || hp.host === '::1')) {
      warnings.push(`admin: ${c.admin} is not loopback and no adminToken is set: anyone who reaches it can drain backends`)
    }
  }
}

/** Formats a problem; `source` says where the offending value came from. */
function format(p: Problem, source?: string): string {
  return source ? `${p.path}: ${p.problem} (${source})` : `${p.path}: ${p.problem}`
}

/**
 * Validates one complete or partial raw config (e.g. a parsed YAML file) merged over the defaults.
 * An empty `secret` is replaced by a random one, with a warning.
 */
export function validateConfig(raw: unknown, source: string): { config?: EdgeConfig; errors: string[]; warnings: string[] } {
  const problems: Problem[] = []
  const layer = checkLayer(raw, problems)
  const errors = problems.map((p) => format(p, source))
  const warnings: string[] = []
  const merged = cloneDefaults()
  applyLayer(merged, layer)
  return finish(merged, errors, warnings)
}

function finish(
  merged: Record<string, unknown>,
  errors: string[],
  warnings: string[],
  keepSecret?: string,
): { config?: EdgeConfig; errors: string[]; warnings: string[] } {
  if (errors.length > 0) return { errors, warnings }
  const config = merged as unknown as EdgeConfig
  const cross: Problem[] = []
  crossCheck(config, cross, warnings)
  for (const p of cross) errors.push(format(p))
  if (errors.length > 0) return { errors, warnings }
  if (config.secret === '' && keepSecret) {
    config.secret = keepSecret
  } else if (config.secret === '') {
    config.secret = randomBytes(32).toString('base64url')
    warnings.push(
      'secret: not set, using a random one: dialogs will not survive a restart and edges will not share them (set SIPEDGE_SECRET)',
    )
  }
  return { config, errors, warnings }
}

// ---------------------------------------------------------------------------------------------
// Environment and flags -> layers
// ---------------------------------------------------------------------------------------------

function setPath(obj: Layer, path: string, value: unknown): void {
  const parts = path.split('.')
  let o = obj
  for (const p of parts.slice(0, -1)) {
    if (!isPlainObject(o[p])) o[p] = {}
    o = o[p] as Layer
  }
  o[parts[parts.length - 1]!] = value
}

function getPath(obj: Layer, path: string): unknown {
  let o: unknown = obj
  for (const p of path.split('.')) o = isPlainObject(o) ? o[p] : undefined
  return o
}

/** Converts a flag/env string to the typed value of its key, or returns an error text. */
function convert(spec: FlagSpec, text: string): { value: unknown } | string {
  switch (spec.type) {
    case 'string':
      return { value: text }
    case 'int':
      return /^-?\d+$/.test(text.trim()) ? { value: Number(text.trim()) } : `"${text}" is not an integer`
    case 'boolean': {
      const t = text.trim().toLowerCase()
      if (['1', 'true', 'yes', 'on'].includes(t)) return { value: true }
      if (['0', 'false', 'no', 'off'].includes(t)) return { value: false }
      return `"${text}" is not a boolean (true/false)`
    }
    case 'list':
      return { value: splitList(text) }
    case 'int-list': {
      const items = splitList(text)
      const bad = items.find((s) => !/^\d+$/.test(s))
      return bad !== undefined ? `"${bad}" is not an integer` : { value: items.map(Number) }
    }
    case 'map': {
      const map: Record<string, string> = {}
      for (const item of splitList(text)) {
        const eq = item.indexOf('=')
        if (eq <= 0) return `"${item}" is not NAME=VALUE`
        map[item.slice(0, eq).trim()] = item.slice(eq + 1).trim()
      }
      return { value: map }
    }
  }
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/** Adds a converted value to a layer: repeatable flags accumulate, others replace. */
function put(layer: Layer, spec: FlagSpec, value: unknown): void {
  const prev = getPath(layer, spec.key)
  if (spec.type === 'map') setPath(layer, spec.key, { ...(prev as object | undefined), ...(value as object) })
  else if (spec.multiple && Array.isArray(prev)) setPath(layer, spec.key, [...prev, ...(value as unknown[])])
  else setPath(layer, spec.key, value)
}

const FLAG_BY_NAME = new Map(FLAGS.map((f) => [f.flag, f]))

/** Which flag/env variable a problem path came from, so that errors point at what the user typed. */
function specForPath(path: string): FlagSpec | undefined {
  const clean = path.replace(/\[\d+\]/g, '')
  let best: FlagSpec | undefined
  for (const f of FLAGS) {
    if ((clean === f.key || clean.startsWith(`${f.key}.`)) && (!best || f.key.length > best.key.length)) best = f
  }
  return best
}

export interface ParsedArgs {
  layer: Layer
  configFile?: string
  help: boolean
  version: boolean
  positionals: string[]
  errors: string[]
  /** Flags that carried secrets on the command line (visible in `ps`). */
  secretFlags: string[]
}

/** Parses `--flag value`, `--flag=value`, `--flag`/`--no-flag` (booleans); `--` ends flags. */
export function parseArgv(argv: string[]): ParsedArgs {
  const r: ParsedArgs = { layer: {}, help: false, version: false, positionals: [], errors: [], secretFlags: [] }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      r.positionals.push(...argv.slice(i + 1))
      break
    }
    if (arg === '-h') {
      r.help = true
      continue
    }
    if (arg === '-v' || arg === '-V') {
      r.version = true
      continue
    }
    if (!arg.startsWith('--')) {
      r.positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    let inline = eq < 0 ? undefined : arg.slice(eq + 1)
    if (name === 'help' || name === 'version') {
      r[name] = true
      continue
    }
    let spec = FLAG_BY_NAME.get(name)
    let negated = false
    if (!spec && name.startsWith('no-')) {
      const base = FLAG_BY_NAME.get(name.slice(3))
      if (base?.type === 'boolean' && inline === undefined) {
        spec = base
        negated = true
      }
    }
    if (name === 'config') {
      const value = inline ?? argv[++i]
      if (value === undefined || value === '') r.errors.push('--config: needs a FILE')
      else r.configFile = value
      continue
    }
    if (!spec) {
      const camel = FLAGS.find((f) => f.key === kebabToCamel(name) || f.key === name)
      r.errors.push(`--${name}: unknown flag${camel ? ` (did you mean --${camel.flag}?)` : ''}; see --help`)
      if (inline === undefined && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) i++
      continue
    }
    if (spec.type === 'boolean' && inline === undefined) {
      put(r.layer, spec, !negated)
      continue
    }
    if (inline === undefined) {
      inline = argv[++i]
      if (inline === undefined) {
        r.errors.push(`--${spec.flag}: needs a value (${spec.arg ?? spec.type})`)
        continue
      }
    }
    if (SECRET_FLAGS.has(spec.flag)) r.secretFlags.push(spec.flag)
    const converted = convert(spec, inline)
    if (typeof converted === 'string') r.errors.push(`${spec.key}: ${converted} (flag --${spec.flag})`)
    else put(r.layer, spec, converted.value)
  }
  return r
}

function envLayer(env: NodeJS.ProcessEnv, errors: string[]): Layer {
  const layer: Layer = {}
  for (const spec of FLAGS) {
    const text = env[spec.env]
    if (text === undefined || text === '') continue
    const converted = convert(spec, text)
    if (typeof converted === 'string') errors.push(`${spec.key}: ${converted} (env ${spec.env})`)
    else put(layer, spec, converted.value)
  }
  return layer
}

/** Reads and parses a YAML file; problems carry the line and column. */
export function readYamlConfig(file: string, readFile: (p: string) => string): { raw?: unknown; errors: string[] } {
  let text: string
  try {
    text = readFile(file)
  } catch (err) {
    return { errors: [`config: cannot read ${file}: ${(err as Error).message}`] }
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    return {
      errors: doc.errors.map((e) => {
        const at = e.linePos?.[0]
        const first = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
        return `${file}${at ? `:${at.line}:${at.col}` : ''}: YAML error: ${first}`
      }),
    }
  }
  return { raw: doc.toJS({ maxAliasCount: 100 }) as unknown, errors: [] }
}

export interface LoadResult {
  config: EdgeConfig
  file?: string
  /** Each names the key and the problem; non-empty = do not start. */
  errors: string[]
  warnings: string[]
}

/** Builds the config from defaults < SIPEDGE_* env < YAML file < flags. */
export function loadConfig(opts: {
  argv: string[]
  env?: NodeJS.ProcessEnv
  readFile?: (p: string) => string
  /** On reload: reuse this (earlier generated) secret when none is configured, so dialogs stay valid. */
  keepSecret?: string
}): LoadResult {
  const env = opts.env ?? process.env
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'))
  const errors: string[] = []
  const warnings: string[] = []
  const merged = cloneDefaults()

  const envL = envLayer(env, errors)
  const envProblems: Problem[] = []
  applyLayer(merged, checkLayer(envL, envProblems))
  for (const p of envProblems) errors.push(format(p, `env ${specForPath(p.path)?.env ?? 'SIPEDGE_*'}`))

  const args = parseArgv(opts.argv)
  errors.push(...args.errors)
  for (const p of args.positionals) errors.push(`unexpected argument "${p}"; see --help`)

  const file = args.configFile ?? (env.SIPEDGE_CONFIG || undefined)
  if (file !== undefined) {
    const y = readYamlConfig(file, readFile)
    errors.push(...y.errors)
    const fileProblems: Problem[] = []
    applyLayer(merged, checkLayer(y.raw, fileProblems))
    for (const p of fileProblems) errors.push(format(p, `file ${file}`))
  }

  const flagProblems: Problem[] = []
  applyLayer(merged, checkLayer(args.layer, flagProblems))
  for (const p of flagProblems) errors.push(format(p, `flag --${specForPath(p.path)?.flag ?? '?'}`))
  for (const f of args.secretFlags) {
    const spec = FLAG_BY_NAME.get(f)!
    warnings.push(`--${f}: secrets on the command line are visible to every local user (ps); prefer ${spec.env} or the config file`)
  }

  const done = finish(merged, errors, warnings, opts.keepSecret)
  return {
    config: done.config ?? (merged as unknown as EdgeConfig),
    ...(file !== undefined ? { file } : {}),
    errors: done.errors,
    warnings: done.warnings,
  }
}

/** Top-level keys whose values differ between two configs (for SIGHUP reload reports). */
export function changedKeys(a: EdgeConfig, b: EdgeConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  const out: string[] = []
  for (const k of keys) {
    const va = (a as unknown as Record<string, unknown>)[k]
    const vb = (b as unknown as Record<string, unknown>)[k]
    if (JSON.stringify(va) !== JSON.stringify(vb)) out.push(k)
  }
  return out
}
