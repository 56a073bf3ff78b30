/**
 * Where layers come from: command-line flags (a small parser: Node 20's util.parseArgs has no `--no-x`
 * negation and its strict errors cannot carry a did-you-mean), SIPEDGE_* environment variables and the YAML
 * file (with the line of every key, for messages). Also `--help`, generated from the key table.
 */
import { LineCounter, parseDocument, type Document } from 'yaml'
import { kebabToCamel, splitList } from './fields.js'
import { DEFAULT_CONFIG, FLAGS, type FlagSpec } from './keys.js'
import type { Layer } from './schema.js'

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Flags that are not config keys. */
export const COMMAND_FLAGS = [
  { flag: 'config', arg: 'FILE', help: 'YAML config file (env SIPEDGE_CONFIG)' },
  { flag: 'help', help: 'print this help' },
  { flag: 'version', help: 'print the version' },
] as const


/** The `--help` options block, generated from FLAGS. */
export function flagsHelp(): string {
  const rows: Array<[string, string]> = []
  for (const c of COMMAND_FLAGS) rows.push([`--${c.flag}${'arg' in c ? ` ${c.arg}` : ''}`, c.help])
  for (const f of FLAGS) {
    const left = f.type === 'boolean' ? `--[no-]${f.flag}` : `--${f.flag} ${f.arg ?? 'VALUE'}`
    const def = defaultText(f.key)
    rows.push([left, `${f.help}${f.multiple ? ' (repeatable, or comma list)' : ''}${def}${f.restart ? ' (restart to change)' : ''}  [${f.env}]`])
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


/** Adds a converted value to a layer: repeatable flags accumulate, others replace. */
function put(layer: Layer, spec: FlagSpec, value: unknown): void {
  const prev = getPath(layer, spec.key)
  if (spec.type === 'map') setPath(layer, spec.key, { ...(prev as object | undefined), ...(value as object) })
  else if (spec.multiple && Array.isArray(prev)) setPath(layer, spec.key, [...prev, ...(value as unknown[])])
  else setPath(layer, spec.key, value)
}

export const FLAG_BY_NAME = new Map(FLAGS.map((f) => [f.flag, f]))

/** Which flag/env variable a problem path came from, so that errors point at what the user typed. */
export function specForPath(path: string): FlagSpec | undefined {
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
    if (spec.secret) r.secretFlags.push(spec.flag)
    const converted = convert(spec, inline)
    if (typeof converted === 'string') r.errors.push(`${spec.key}: ${converted} (flag --${spec.flag})`)
    else put(r.layer, spec, converted.value)
  }
  return r
}

export function envLayer(env: NodeJS.ProcessEnv, errors: string[]): Layer {
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
export function readYamlConfig(
  file: string,
  readFile: (p: string) => string,
): { raw?: unknown; errors: string[]; lineOf?: (path: string) => number | undefined } {
  let text: string
  try {
    text = readFile(file)
  } catch (err) {
    return { errors: [`config: cannot read ${file}: ${(err as Error).message}`] }
  }
  const lines = new LineCounter()
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter: lines })
  if (doc.errors.length > 0) {
    return {
      errors: doc.errors.map((e) => {
        const at = e.linePos?.[0]
        const first = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
        return `${file}${at ? `:${at.line}:${at.col}` : ''}: YAML error: ${first}`
      }),
    }
  }
  return { raw: doc.toJS({ maxAliasCount: 100 }) as unknown, errors: [], lineOf: (path) => lineOf(doc, lines, path) }
}

/** The line of `probe.intervalMs` / `listen[1]` in the file, or of its nearest parent that is there. */
function lineOf(doc: Document, lines: LineCounter, path: string): number | undefined {
  const parts: Array<string | number> = []
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) parts.push(m[2] !== undefined ? Number(m[2]) : m[1]!)
  for (let n = parts.length; n > 0; n--) {
    const node = doc.getIn(parts.slice(0, n), true) as { range?: [number, number, number] } | undefined
    if (node?.range) return lines.linePos(node.range[0]).line
  }
  return undefined
}
