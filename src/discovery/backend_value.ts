// The etcd data model: key `<prefix><set>/<id>`, value JSON
// `{"uri":"sip:127.0.1.1:5080","weight":1,"priority":0,"state":"active"}`. Unknown fields go to `extra`.
import type { AdminState, BackendSpec } from '../dispatch/types.js'
import { MAX_PRIORITY, MAX_WEIGHT, checkRank, formatBackendUri, parseBackendUri } from './backend_uri.js'

export const DEFAULT_PREFIX = '/sipedge/backends/'

const KNOWN = new Set(['uri', 'weight', 'priority', 'state'])
const STATES: ReadonlySet<string> = new Set<AdminState>(['active', 'draining', 'disabled'])

/** Splits a key under `prefix` into set and id. Returns an error message for a malformed key. */
export function splitBackendKey(prefix: string, key: string): { set: string; id: string } | string {
  if (!key.startsWith(prefix)) return `key is outside prefix ${prefix}`
  const rest = key.slice(prefix.length)
  const slash = rest.indexOf('/')
  if (slash <= 0 || slash === rest.length - 1) return 'key must be <prefix><set>/<id>'
  return { set: rest.slice(0, slash), id: rest.slice(slash + 1) }
}

export function backendKey(prefix: string, set: string, id: string): string {
  return `${prefix}${set}/${id}`
}

/** Parses one etcd value into a spec with id `<set>/<id>`. Returns an error message when invalid. */
export function parseBackendValue(set: string, id: string, text: string): BackendSpec | string {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return `value is not JSON: ${(err as Error).message}`
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'value must be a JSON object'
  const obj = doc as Record<string, unknown>
  if (typeof obj.uri !== 'string') return 'value has no string "uri"'
  const parsed = parseBackendUri(obj.uri)
  if (typeof parsed === 'string') return parsed
  const weight = obj.weight ?? 1
  const priority = obj.priority ?? 0
  const err = checkRank('weight', weight, MAX_WEIGHT) ?? checkRank('priority', priority, MAX_PRIORITY)
  if (err) return err
  const state = obj.state ?? 'active'
  if (typeof state !== 'string' || !STATES.has(state)) {
    return `state must be "active", "draining" or "disabled" (got ${JSON.stringify(state)})`
  }
  const spec: BackendSpec = {
    id: `${set}/${id}`,
    set,
    uri: formatBackendUri(parsed),
    weight: weight as number,
    priority: priority as number,
    admin: state as AdminState,
    source: 'etcd',
  }
  // fromEntries defines own properties, so a "__proto__" field stays data and cannot touch prototypes.
  const extra = Object.entries(obj).filter(([name]) => !KNOWN.has(name))
  if (extra.length > 0) spec.extra = Object.fromEntries(extra)
  return spec
}

export interface BackendValue {
  uri: string
  weight: number
  priority: number
  state: AdminState
  [extra: string]: unknown
}

export function encodeBackendValue(v: BackendValue): string {
  return JSON.stringify(v)
}
