// `sipedge register`: announce one backend in etcd under a lease kept alive, re-announce when the lease is
// lost (etcd wiped or unreachable past the TTL), and on SIGTERM/SIGINT drain: mark `state: draining`,
// wait for active calls to reach 0 (or a deadline), revoke the lease, exit 0.
import { parseArgs } from 'node:util'
import type { Etcd3, Lease } from 'etcd3'
import { pino, type Logger } from 'pino'
import type { AdminState } from '../dispatch/types.js'
import { MAX_PRIORITY, MAX_WEIGHT, backendIdFromUri, checkRank, formatBackendUri, parseBackendUri } from './backend_uri.js'
import { DEFAULT_PREFIX, backendKey, encodeBackendValue } from './backend_value.js'
import { readActiveCalls } from './calls_probe.js'
import { createEtcdClient, etcdErrorText, type EtcdConnectOptions } from './etcd_client.js'

export interface RegisterOptions extends EtcdConnectOptions {
  set: string
  uri: string
  /** Key id under the set; default `host:port` of the URI. */
  id?: string
  weight?: number
  priority?: number
  /** Lease TTL in seconds (default 10). */
  ttl?: number
  prefix?: string
  /** Edge admin base URLs polled for `activeCalls` while draining. */
  edgeAdmin?: string[]
  edgeAdminToken?: string
  /** Shell command printing the active call count first (e.g. `asterisk -rx 'core show calls count'`). */
  callsCommand?: string
  /** Longest wait for calls to end once draining (default 60 000 ms). */
  drainTimeoutMs?: number
  /** Calls polling interval (default 1000 ms). */
  pollMs?: number
  /** Extra fields stored in the value (kept by the edge in `extra`). */
  extra?: Record<string, unknown>
  logger?: Logger
}

const RETRY_MIN_MS = 250
const RETRY_MAX_MS = 5000

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Validates options; returns an error message or the resolved key, id and canonical URI. */
export function resolveRegistration(opts: RegisterOptions): { key: string; id: string; uri: string } | string {
  const parsed = parseBackendUri(opts.uri)
  if (typeof parsed === 'string') return parsed
  if (!opts.set || opts.set.includes('/')) return 'set must be non-empty and contain no "/"'
  const id = opts.id ?? backendIdFromUri(parsed)
  if (id.length === 0) return 'id must be non-empty'
  const rank = checkRank('weight', opts.weight ?? 1, MAX_WEIGHT) ?? checkRank('priority', opts.priority ?? 0, MAX_PRIORITY)
  if (rank) return rank
  const ttl = opts.ttl ?? 10
  if (!Number.isInteger(ttl) || ttl < 2 || ttl > 3600) return `ttl must be an integer number of seconds from 2 to 3600 (got ${ttl})`
  const prefix = opts.prefix ?? DEFAULT_PREFIX
  if (!prefix.endsWith('/')) return `prefix must end with "/" (got "${prefix}")`
  return { key: backendKey(prefix, opts.set, id), id, uri: formatBackendUri(parsed) }
}

/**
 * Runs a registration until `signal` aborts, then drains and deregisters. Resolves with the exit code:
 * 0 after a drain (even if etcd was unreachable at the end: the lease then expires on its own), 2 on bad
 * options. Aborting `force` while draining stops waiting for calls (a second SIGTERM/SIGINT).
 */
export async function register(opts: RegisterOptions, signal: AbortSignal, force?: AbortSignal): Promise<number> {
  const log = opts.logger ?? registerLogger()
  const resolved = resolveRegistration(opts)
  if (typeof resolved === 'string') {
    log.error({ reason: resolved }, 'invalid registration options')
    return 2
  }
  const { key, uri } = resolved
  const ttl = opts.ttl ?? 10
  const value = (state: AdminState) =>
    encodeBackendValue({ ...opts.extra, uri, weight: opts.weight ?? 1, priority: opts.priority ?? 0, state })

  let client: Etcd3
  try {
    client = createEtcdClient(opts)
  } catch (err) {
    log.error({ reason: etcdErrorText(err) }, 'invalid etcd options')
    return 2
  }
  log.info({ key, uri, ttl, endpoints: opts.endpoints }, 'registering backend')

  const aborted = new Promise<'aborted'>((resolve) => {
    if (signal.aborted) resolve('aborted')
    else signal.addEventListener('abort', () => resolve('aborted'), { once: true })
  })
  let lease: Lease | undefined
  let retry = RETRY_MIN_MS
  while (!signal.aborted) {
    const current = client.lease(ttl)
    lease = current
    // Attach before any await: etcd3 emits 'lost' when the grant itself fails.
    const lost = new Promise<unknown>((resolve) => current.once('lost', resolve))
    try {
      await current.put(key).value(value('active'))
      const leaseId = await current.grant()
      retry = RETRY_MIN_MS
      log.info({ key, lease: leaseId, ttl }, 'registered')
      const why = await Promise.race([lost, aborted])
      if (why === 'aborted') break
      log.warn({ key, err: etcdErrorText(why) }, 'lease lost: registering again')
    } catch (err) {
      current.release()
      log.warn({ key, err: etcdErrorText(err), retryInMs: retry }, 'registration failed: retrying')
      await sleep(retry, signal)
      retry = Math.min(RETRY_MAX_MS, retry * 2)
    }
  }

  await drain(opts, lease, key, value('draining'), uri, log, force)
  client.close()
  return 0
}

async function drain(opts: RegisterOptions, lease: Lease | undefined, key: string, draining: string, uri: string, log: Logger, force?: AbortSignal): Promise<void> {
  const alive = lease !== undefined && !lease.revoked()
  if (alive) {
    try {
      await lease.put(key).value(draining)
      log.info({ key }, 'draining: no new calls will be sent here')
    } catch (err) {
      log.warn({ key, err: etcdErrorText(err) }, 'could not mark draining')
    }
  }
  await waitForCalls(opts, uri, log, force)
  if (alive) {
    try {
      await lease.revoke()
      log.info({ key }, 'deregistered: lease revoked')
    } catch (err) {
      lease.release()
      log.warn({ key, err: etcdErrorText(err) }, 'could not revoke the lease: it expires on its own')
    }
  } else {
    lease?.release()
    log.info({ key }, 'deregistered (no live lease)')
  }
}

async function waitForCalls(opts: RegisterOptions, uri: string, log: Logger, force?: AbortSignal): Promise<void> {
  const edgeAdmin = opts.edgeAdmin ?? []
  if (!opts.callsCommand && edgeAdmin.length === 0) {
    log.warn('no --calls-command or --edge-admin: not waiting for calls to end')
    return
  }
  const timeoutMs = opts.drainTimeoutMs ?? 60_000
  const pollMs = opts.pollMs ?? 1000
  const deadline = Date.now() + timeoutMs
  let last: string | undefined
  for (;;) {
    const reading = await readActiveCalls({
      callsCommand: opts.callsCommand,
      edgeAdmin,
      uri,
      timeoutMs: Math.min(5000, timeoutMs),
      ...(opts.edgeAdminToken ? { edgeAdminToken: opts.edgeAdminToken } : {}),
    })
    const text = JSON.stringify(reading)
    if (text !== last) {
      last = text
      if ('error' in reading) log.warn({ reason: reading.error }, 'cannot read active calls')
      else log.info({ calls: reading.calls }, 'active calls')
    }
    if ('calls' in reading && reading.calls === 0) return
    if (force?.aborted) {
      log.warn({ last: reading }, 'second signal: not waiting for calls any longer')
      return
    }
    const left = deadline - Date.now()
    if (left <= 0) {
      log.warn({ drainTimeoutMs: timeoutMs, last: reading }, 'drain deadline reached with calls possibly active')
      return
    }
    await sleep(Math.min(pollMs, left), force)
  }
}

export const REGISTER_USAGE = `Usage: sipedge register --etcd URL[,URL] --set NAME --uri sip:IP:PORT [options]

Announces this backend in etcd with a lease kept alive. On SIGTERM/SIGINT: marks it draining, waits for its
active calls to end (or --drain-timeout), revokes the lease and exits 0. A second signal stops the wait.

  --etcd URL[,URL]        etcd endpoints (http:// or https://)        (required)
  --set NAME              backend set (dispatcher group)              (required)
  --uri URI               this backend, e.g. sip:127.0.1.1:5080       (required)
  --id ID                 key id under the set (default host:port of the URI)
  --weight N              default 1
  --priority N            default 0
  --ttl SECONDS           lease TTL, default 10
  --prefix P              key prefix, default ${DEFAULT_PREFIX}
  --edge-admin URL[,URL]  edge admin API; GET <URL>/backends gives activeCalls while draining
  --edge-admin-token T    bearer token of the edge admin API (or SIPEDGE_ADMIN_TOKEN)
  --calls-command CMD     shell command printing the active call count first,
                          e.g. "asterisk -rx 'core show calls count'"
  --drain-timeout SECONDS longest wait for calls to end, default 60
  --username U --password P    etcd user/password (or SIPEDGE_ETCD_PASSWORD)
  --cacert F --cert F --key F  etcd TLS files (PEM)
  -h, --help              print this help
`

function intFlag(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  if (!/^[0-9]+$/.test(text)) throw new Error(`--${name} must be a non-negative integer (got "${text}")`)
  return Number(text)
}

/** Parses `sipedge register` flags into options. Throws Error with a user-facing message. */
export function parseRegisterArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): RegisterOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      etcd: { type: 'string' },
      set: { type: 'string' },
      uri: { type: 'string' },
      id: { type: 'string' },
      weight: { type: 'string' },
      priority: { type: 'string' },
      ttl: { type: 'string' },
      prefix: { type: 'string' },
      'edge-admin': { type: 'string' },
      'edge-admin-token': { type: 'string' },
      'calls-command': { type: 'string' },
      'drain-timeout': { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      cacert: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
  })
  if (values.help) return 'help'
  for (const required of ['etcd', 'set', 'uri'] as const) {
    if (!values[required]) throw new Error(`--${required} is required`)
  }
  const list = (s: string) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0)
  const opts: RegisterOptions = {
    endpoints: list(values.etcd as string),
    set: values.set as string,
    uri: values.uri as string,
    weight: intFlag('weight', values.weight, 1),
    priority: intFlag('priority', values.priority, 0),
    ttl: intFlag('ttl', values.ttl, 10),
    drainTimeoutMs: intFlag('drain-timeout', values['drain-timeout'], 60) * 1000,
  }
  if (values.id !== undefined) opts.id = values.id
  if (values.prefix !== undefined) opts.prefix = values.prefix
  if (values['edge-admin'] !== undefined) opts.edgeAdmin = list(values['edge-admin'])
  const adminToken = values['edge-admin-token'] ?? env.SIPEDGE_ADMIN_TOKEN
  if (adminToken) opts.edgeAdminToken = adminToken
  if (values['calls-command'] !== undefined) opts.callsCommand = values['calls-command']
  const password = values.password ?? env.SIPEDGE_ETCD_PASSWORD
  if (values.username !== undefined) {
    if (password === undefined) throw new Error('--username needs --password (or SIPEDGE_ETCD_PASSWORD)')
    opts.auth = { username: values.username, password }
  }
  if (values.cacert || values.cert || values.key) {
    opts.tls = {}
    if (values.cacert) opts.tls.ca = values.cacert
    if (values.cert) opts.tls.cert = values.cert
    if (values.key) opts.tls.key = values.key
  }
  return opts
}

/** ISO time, as the edge logs (src/edge/logger.ts), so both read the same in one log pipeline. */
function registerLogger(): Logger {
  return pino({ name: 'sipedge-register', timestamp: pino.stdTimeFunctions.isoTime })
}

/** Where runRegister writes; defaults to the process streams (tests pass their own). */
export interface RegisterIo {
  logger?: Logger
  stdout?: (text: string) => void
  stderr?: (text: string) => void
  env?: NodeJS.ProcessEnv
}

/** Entry for `sipedge register ...`: returns the process exit code. */
export async function runRegister(argv: string[], io: RegisterIo = {}): Promise<number> {
  const stdout = io.stdout ?? ((s: string) => void process.stdout.write(s))
  const stderr = io.stderr ?? ((s: string) => void process.stderr.write(s))
  let opts: RegisterOptions | 'help'
  try {
    opts = parseRegisterArgs(argv, io.env)
  } catch (err) {
    stderr(`sipedge register: ${(err as Error).message}\n\n${REGISTER_USAGE}`)
    return 2
  }
  if (opts === 'help') {
    stdout(REGISTER_USAGE)
    return 0
  }
  const log = io.logger ?? registerLogger()
  opts.logger = log
  const controller = new AbortController()
  const force = new AbortController()
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig, draining: controller.signal.aborted }, 'signal received')
    if (controller.signal.aborted) force.abort(sig)
    else controller.abort(sig)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    return await register(opts, controller.signal, force.signal)
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}
