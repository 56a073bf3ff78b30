/**
 * Building a configuration: built-in defaults < SIPEDGE_* environment < YAML file < flags, each layer
 * checked by the schema (problems name the key, the source and, for the file, the line), then the rules
 * across keys. Library options go through validateConfig the same way.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { toMediaConfig, type MediaConfig } from '../media/config.js'
import { crossCheck, crossCheckMedia } from './cross.js'
import { DEFAULT_CONFIG, type EdgeConfig } from './keys.js'
import { applyLayer, checkLayer, type Layer, type Problem } from './schema.js'
import { FLAG_BY_NAME, envLayer, parseArgv, readYamlConfig, specForPath } from './sources.js'

function cloneDefaults(): Layer {
  return structuredClone(DEFAULT_CONFIG) as unknown as Layer
}

function fileSource(file: string, lineOf: ((path: string) => number | undefined) | undefined, path: string): string {
  const line = path === '(top level)' ? undefined : lineOf?.(path)
  return line === undefined ? `file ${file}` : `file ${file}:${line}`
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
  locate?: (path: string) => string | undefined,
): { config?: EdgeConfig; errors: string[]; warnings: string[] } {
  if (errors.length > 0) return { errors, warnings }
  const config = merged as unknown as EdgeConfig
  const cross: Problem[] = []
  crossCheck(config, cross, warnings)
  // A rule over several keys points at the file line of the key it names, when the file has that key.
  for (const p of cross) errors.push(format(p, locate?.(p.path)))
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
  let locate: ((path: string) => string | undefined) | undefined
  if (file !== undefined) {
    const y = readYamlConfig(file, readFile)
    errors.push(...y.errors)
    const fileProblems: Problem[] = []
    applyLayer(merged, checkLayer(y.raw, fileProblems))
    // In the order of the file (zod reports in the order of the key table).
    const lineOf = (p: Problem) => (p.path === '(top level)' ? 0 : (y.lineOf?.(p.path) ?? 0))
    fileProblems.sort((a, b) => lineOf(a) - lineOf(b))
    for (const p of fileProblems) errors.push(format(p, fileSource(file, y.lineOf, p.path)))
    locate = (path) => {
      const line = y.lineOf?.(path)
      return line === undefined ? undefined : `file ${file}:${line}`
    }
  }

  const flagProblems: Problem[] = []
  applyLayer(merged, checkLayer(args.layer, flagProblems))
  for (const p of flagProblems) errors.push(format(p, `flag --${specForPath(p.path)?.flag ?? '?'}`))
  for (const f of args.secretFlags) {
    const spec = FLAG_BY_NAME.get(f)!
    warnings.push(`--${f}: secrets on the command line are visible to every local user (ps); prefer ${spec.env} or the config file`)
  }

  const done = finish(merged, errors, warnings, opts.keepSecret, locate)
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

/**
 * The `media` section alone, checked like the file (library users who build `createMedia` themselves): the
 * MediaConfig, or every problem naming its key (`media.ping.okThreshold: 0 is out of range 1..100`).
 */
export function validateMediaConfig(raw: unknown): { config?: MediaConfig; errors: string[] } {
  const problems: Problem[] = []
  const layer = checkLayer({ media: raw ?? {} }, problems)
  const merged = cloneDefaults()
  applyLayer(merged, layer)
  if (problems.length === 0) crossCheckMedia(merged as unknown as EdgeConfig, undefined, problems)
  if (problems.length > 0) return { errors: problems.map((p) => format(p)) }
  return { config: toMediaConfig((merged as unknown as EdgeConfig).media), errors: [] }
}
