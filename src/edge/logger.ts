/**
 * Logging: pino JSON lines on stdout, one `component` child per subsystem with its own level, and
 * LogOnce so that a flood from one source (scanner, broken peer) logs once per window, not per message.
 */
import { LRUCache } from 'lru-cache'
import { pino, type DestinationStream, type Logger } from 'pino'
import type { EdgeConfig, LogLevel } from './config.js'

type LogConfig = Pick<EdgeConfig, 'logLevel' | 'logLevels'>

/** Never let a key or a password reach the logs, even when a whole config object is logged. */
const REDACT = [
  'secret',
  'adminToken',
  'password',
  'authorization',
  'config.secret',
  'config.adminToken',
  'config.etcd.password',
  'config.hep.password',
  'headers.authorization',
]

/** Children per root logger, so that a reload (SIGHUP) can change their levels in place. */
const components = new WeakMap<Logger, Map<string, Logger>>()

/** The root logger. `dest` is for tests; the default is synchronous stdout (logs are rare at info). */
export function createLogger(config: LogConfig, dest?: DestinationStream): Logger {
  const options = {
    name: 'sipedge',
    level: config.logLevel,
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  const root = dest ? pino(options, dest) : pino(options)
  components.set(root, new Map())
  return root
}

/** The level a component logs at: its own from `logLevels`, else the global one. */
export function levelFor(config: LogConfig, component: string): LogLevel {
  return config.logLevels[component] ?? config.logLevel
}

/** A child logger `{component}` with its configured level; the same instance for the same name. */
export function componentLogger(root: Logger, config: LogConfig, component: string): Logger {
  let children = components.get(root)
  if (!children) {
    children = new Map()
    components.set(root, children)
  }
  let child = children.get(component)
  if (!child) {
    child = root.child({ component }, { level: levelFor(config, component) })
    children.set(component, child)
  }
  return child
}

/** Applies new levels (SIGHUP) to the root and to every component child made so far. */
export function applyLogLevels(root: Logger, config: LogConfig): void {
  root.level = config.logLevel
  const children = components.get(root)
  if (!children) return
  for (const [component, child] of children) child.level = levelFor(config, component)
}

interface OnceEntry {
  until: number
  suppressed: number
}

/**
 * Logs one line per key per window. Keys are bounded by an LRU so that a spoofed-source flood costs
 * at most `max` entries. When a key logs again after its window, the line carries how many were
 * suppressed in between.
 */
export class LogOnce {
  private readonly seen: LRUCache<string, OnceEntry>
  constructor(
    private readonly log: Logger,
    max = 10000,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {
    this.seen = new LRUCache<string, OnceEntry>({ max })
  }

  /** True when the line was written, false when suppressed. */
  warn(key: string, obj: object, msg: string): boolean {
    return this.emit('warn', key, obj, msg)
  }

  error(key: string, obj: object, msg: string): boolean {
    return this.emit('error', key, obj, msg)
  }

  /** Keys currently remembered (bounded by `max`). */
  get size(): number {
    return this.seen.size
  }

  private emit(level: 'warn' | 'error', key: string, obj: object, msg: string): boolean {
    const t = this.now()
    const entry = this.seen.get(key)
    if (entry && t < entry.until) {
      entry.suppressed++
      return false
    }
    const suppressed = entry?.suppressed ?? 0
    this.seen.set(key, { until: t + this.ttlMs, suppressed: 0 })
    this.log[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg)
    return true
  }
}
