/**
 * Logging: pino JSON lines on stdout, one `component` child per subsystem with its own level (LogOnce,
 * re-exported here, is in src/util/log-once.ts).
 */
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

// LogOnce lives below the proxy (src/util): the proxy uses it, and nothing under src/proxy imports from src/edge.
export { LogOnce } from '../util/log-once.js'
