#!/usr/bin/env node
/**
 * The `sipedge` binary: `sipedge [flags]` runs the edge; `demo`, `register`, `check-config FILE`
 * are subcommands. Signals: SIGTERM/SIGINT drain then exit 0 (a second one exits at once),
 * SIGHUP re-reads the config and applies what can change live.
 */
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { VERSION } from '../version.js'
import {
  changedKeys,
  flagsHelp,
  loadConfig,
  parseArgv,
  type EdgeConfig,
} from './config.js'
import { applyLogLevels, createLogger } from './logger.js'
import { availableParallelism } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runtimeProblem } from './runtime.js'
import { setWorkerTokens } from '../sip/index.js'
import { setRouteWorker } from '../proxy/routing.js'
import { applySettled, runPrimary, workerIndex, workersProblem } from './workers/supervisor.js'
import type { WorkerLink } from './workers/worker.js'

/** What the CLI needs from src/edge/edge.ts (createEdge). */
export interface EdgeHandle {
  start(): Promise<void>
  /** Resolves with the calls cut at the drain deadline (the CLI exits 3 when there were some). */
  shutdown(): Promise<{ callsCut: number } | void>
  /** Applies a new config; returns the keys that could not change live (need a restart). */
  reload(config: EdgeConfig): string[] | Promise<string[]>
}
export interface EdgeModule {
  createEdge(opts: { config: EdgeConfig; logger: Logger }): Promise<EdgeHandle>
}

export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
  env: NodeJS.ProcessEnv
  readFile?: (path: string) => string
  /** Where SIGTERM/SIGINT/SIGHUP come from (the process; an emitter in tests). */
  signals: EventEmitter
  /** Overrides for tests; default: dynamic imports of the real modules. */
  loadEdge?: () => Promise<EdgeModule>
  createLogger?: (config: EdgeConfig) => Logger
}

// Module paths in variables: the CLI typechecks while edge.ts/demo.ts are written in parallel.
const EDGE_MODULE = './edge.js'
const DEMO_MODULE = './demo.js'
const REGISTER_MODULE = '../discovery/register.js'

/** Exit code of a SIGTERM/SIGINT drain that reached shutdownTimeoutMs with calls still up. */
export const EXIT_CALLS_CUT = 3

const COMMANDS = `Commands:
  sipedge [options]              run the edge
  sipedge demo                   start an edge with stand-in backends on 127.0.1.x and drive calls through it
  sipedge register [options]     announce an Asterisk backend in etcd (run next to it; see register --help)
  sipedge check-config FILE      validate a YAML config and exit (0 = OK, 1 = errors)`

export function usage(): string {
  return `sipedge ${VERSION} — SIP edge dispatcher

${COMMANDS}

Options (YAML key = camelCase of the flag, e.g. --probe-interval-ms = probe.intervalMs;
precedence: defaults < SIPEDGE_* environment < --config file < flags):
${flagsHelp()}

Signals: SIGTERM/SIGINT drain calls then exit (0; ${EXIT_CALLS_CUT} when shutdownTimeoutMs cut calls; a second
signal exits 1 at once); SIGHUP reloads the config file. Run the binary itself (exec sipedge, or
node_modules/.bin/sipedge) for long-running processes: npx does not pass signals on.
`
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const sub = argv[0]
  if (sub === 'demo') return runModule<{ runDemo(argv: string[]): Promise<number> | number }>(DEMO_MODULE, io, (m) => m.runDemo(argv.slice(1)))
  if (sub === 'register') {
    return runModule<{ runRegister(argv: string[]): Promise<number> | number }>(REGISTER_MODULE, io, (m) => m.runRegister(argv.slice(1)))
  }
  if (sub === 'check-config') return checkConfig(argv.slice(1), io)
  if (sub === 'help') {
    io.stdout(usage())
    return 0
  }
  if (sub === 'version') {
    io.stdout(`${VERSION}\n`)
    return 0
  }
  if (sub !== undefined && !sub.startsWith('-')) {
    io.stderr(`sipedge: unknown command "${sub}"\n\n${COMMANDS}\n`)
    return 2
  }

  const args = parseArgv(argv)
  if (args.help) {
    io.stdout(usage())
    return 0
  }
  if (args.version) {
    io.stdout(`${VERSION}\n`)
    return 0
  }
  return runEdge(argv, io)
}

async function runModule<M>(path: string, io: CliIo, run: (m: M) => Promise<number> | number): Promise<number> {
  let mod: M
  try {
    mod = (await import(path)) as M
  } catch (err) {
    io.stderr(`sipedge: cannot load ${path}: ${(err as Error).message}\n`)
    return 1
  }
  return run(mod)
}

function checkConfig(argv: string[], io: CliIo): number {
  const args = parseArgv(argv)
  const file = args.positionals[0] ?? args.configFile
  if (file === undefined || args.positionals.length > 1) {
    io.stderr('usage: sipedge check-config FILE\n')
    return 2
  }
  // The file as the edge would run it: over the SIPEDGE_* environment, so a bad variable shows here too.
  const result = loadConfig({ argv: ['--config', file], env: io.env, readFile: io.readFile ?? defaultReadFile })
  if (result.errors.length > 0) {
    io.stderr(`${file}: ${result.errors.length} error(s):\n${result.errors.map((e) => `  - ${e}\n`).join('')}`)
    return 1
  }
  io.stdout(`${file}: OK\n${result.warnings.map((w) => `  note: ${w}\n`).join('')}`)
  return 0
}

function defaultReadFile(path: string): string {
  return readFileSync(path, 'utf8')
}

async function runEdge(argv: string[], io: CliIo): Promise<number> {
  const load = loadConfig({ argv, env: io.env, ...(io.readFile ? { readFile: io.readFile } : {}) })
  if (load.errors.length > 0) {
    io.stderr(
      `sipedge: invalid configuration, not starting:\n${load.errors.map((e) => `  - ${e}\n`).join('')}` +
        'See sipedge --help, or sipedge check-config FILE.\n',
    )
    return 2
  }
  let config = load.config
  const workers = config.workers === 0 ? availableParallelism() : config.workers
  const problem = runtimeProblem(workers) ?? (workers > 1 ? workersProblem(config) : undefined)
  if (problem !== undefined) {
    io.stderr(`sipedge: ${problem}\n`)
    return 2
  }
  // A worker process of `--workers N` runs this same command: the config plus what its primary settled.
  const worker = workerIndex(io.env)
  if (worker !== undefined) {
    config = applySettled(config, io.env)
    setWorkerTokens(worker) // before any branch is made: a response must name the worker that owns it
    setRouteWorker(worker) // and a dialog's requests the worker that holds it
  }
  let log = (io.createLogger ?? ((c: EdgeConfig) => createLogger(c)))(config)
  if (worker !== undefined) log = log.child({ worker })
  for (const w of load.warnings) if (worker === undefined) log.warn({ component: 'config' }, w)
  // Read by V8 each time it sizes the old generation after a full GC, so setting it now still applies.
  const heapGrowthPercent = config.limits.heapGrowthPercent
  if (heapGrowthPercent > 0) setFlagsFromString(`--heap-growing-percent=${heapGrowthPercent}`)
  if (workers > 1 && worker === undefined) {
    const primaryLog = log
    const reloadOwn = (): void => {
      const next = loadConfig({ argv, env: io.env, ...(io.readFile ? { readFile: io.readFile } : {}) })
      if (next.errors.length === 0) applyLogLevels(primaryLog, next.config)
    }
    return runPrimary({ config: { ...config, workers }, workers, exec: process.argv[1] ?? '', argv, log, signals: io.signals, callsCutCode: EXIT_CALLS_CUT, reloadOwn })
  }

  let edge: EdgeHandle
  let link: WorkerLink | undefined
  try {
    const mod = io.loadEdge ? await io.loadEdge() : ((await import(EDGE_MODULE)) as EdgeModule)
    edge = await mod.createEdge({ config, logger: log })
    link = worker === undefined ? undefined : await joinCluster(edge, worker)
    await edge.start()
    link?.started()
  } catch (err) {
    log.fatal({ err }, 'sipedge failed to start')
    return 1
  }
  log.info({ version: VERSION, node: process.version, config: load.file ?? null, ...(heapGrowthPercent > 0 ? { heapGrowthPercent } : {}) }, worker === undefined ? 'sipedge running (SIGTERM/SIGINT drain, SIGHUP reloads)' : 'sipedge worker running')

  return new Promise<number>((resolve) => {
    let stopping = false
    let reloading = false

    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting without waiting for calls')
        cleanup()
        resolve(1)
        return
      }
      stopping = true
      log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutdown requested')
      // The edge enforces shutdownTimeoutMs; this guard only catches a shutdown that hangs anyway.
      const guard = setTimeout(() => {
        log.error('shutdown did not finish in time, exiting')
        cleanup()
        resolve(1)
      }, config.shutdownTimeoutMs + 5000)
      guard.unref()
      edge.shutdown().then(
        (r) => {
          clearTimeout(guard)
          const cut = r?.callsCut ?? 0
          // Non-zero so that supervisors and scripts see that calls were dropped (EXIT_CALLS_CUT in --help).
          if (cut > 0) log.warn({ callsCut: cut, exitCode: EXIT_CALLS_CUT }, 'sipedge stopped, calls were cut')
          else log.info('sipedge stopped')
          cleanup()
          resolve(cut > 0 ? EXIT_CALLS_CUT : 0)
        },
        (err: unknown) => {
          clearTimeout(guard)
          log.error({ err }, 'shutdown failed')
          cleanup()
          resolve(1)
        },
      )
    }

    const reload = async () => {
      if (stopping || reloading) return
      reloading = true
      try {
        const next = loadConfig({
          argv,
          env: io.env,
          keepSecret: config.secret,
          ...(io.readFile ? { readFile: io.readFile } : {}),
        })
        if (next.errors.length > 0) {
          if (link) link.reloaded({ applied: [], restart: [], errors: next.errors })
          else log.error({ errors: next.errors }, 'SIGHUP: config invalid, keeping the running one')
          return
        }
        const nextConfig = worker === undefined ? next.config : applySettled(next.config, io.env)
        const changed = changedKeys(config, nextConfig)
        const notLive = await edge.reload(nextConfig)
        applyLogLevels(log, nextConfig)
        config = nextConfig
        const applied = changed.filter((k) => !notLive.includes(k))
        // A worker tells its primary, which says it once for all of them.
        if (link) return link.reloaded({ applied, restart: notLive })
        log.info({ applied, file: next.file }, 'SIGHUP: config reloaded')
        if (notLive.length > 0) log.warn({ keys: notLive }, 'SIGHUP: these keys need a restart to take effect, kept as they were')
      } catch (err) {
        if (link) link.reloaded({ applied: [], restart: [], errors: [String((err as Error)?.message ?? err)] })
        else log.error({ err }, 'SIGHUP: reload failed')
      } finally {
        reloading = false
      }
    }

    const onTerm = () => stop('SIGTERM')
    const onInt = () => stop('SIGINT')
    const onHup = () => void reload()
    io.signals.on('SIGTERM', onTerm)
    io.signals.on('SIGINT', onInt)
    io.signals.on('SIGHUP', onHup)
    function cleanup() {
      io.signals.off('SIGTERM', onTerm)
      io.signals.off('SIGINT', onInt)
      io.signals.off('SIGHUP', onHup)
    }
  })
}

/** A worker joins its primary once its edge is up (the edge module is loaded lazily, so is this). */
async function joinCluster(edge: EdgeHandle, index: number): Promise<WorkerLink> {
  const { attachWorker } = await import('./workers/worker.js')
  return attachWorker(edge as unknown as import('./edge.js').Edge, index, (m) => process.send?.(m))
}

function isMain(): boolean {
  const entry = process.argv[1]
  if (!entry) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isMain()) {
  const argv = process.argv.slice(2)
  const longRunning = argv[0] === undefined || argv[0].startsWith('-') || argv[0] === 'demo' || argv[0] === 'register'
  runCli(argv, {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    signals: process,
  }).then(
    (code) => {
      // Running modes may leave handles (etcd client, sockets) behind: exit explicitly.
      if (longRunning) process.exit(code)
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`sipedge: ${(err as Error)?.stack ?? String(err)}\n`)
      process.exit(1)
    },
  )
}
