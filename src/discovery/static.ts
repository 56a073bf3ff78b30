// Static backends from flags or config: `sip:127.0.1.2:5080;weight=2;priority=1`.
import type { BackendSpec } from '../dispatch/types.js'
import { MAX_PRIORITY, MAX_WEIGHT, checkRank, formatBackendUri, parseBackendUri } from './backend_uri.js'

export class StaticBackendError extends Error {
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`invalid backend "${entry}": ${reason}`)
    this.name = 'StaticBackendError'
  }
}

function rankParam(entry: string, what: 'weight' | 'priority', value: string | undefined): number {
  const n: unknown = value !== undefined && /^[0-9]{1,6}$/.test(value) ? Number(value) : value
  const err = checkRank(what, n, what === 'weight' ? MAX_WEIGHT : MAX_PRIORITY)
  if (err) throw new StaticBackendError(entry, err)
  return n as number
}

/**
 * Parses static entries into specs for one set. `weight` and `priority` are taken out of the URI
 * parameters; the id is the canonical URI that remains. Throws StaticBackendError naming the entry.
 */
export function staticBackends(entries: string[], set = 'default'): BackendSpec[] {
  if (set.length === 0 || set.includes('/')) throw new StaticBackendError(set, 'set name must be non-empty and contain no "/"')
  const specs: BackendSpec[] = []
  const seen = new Set<string>()
  for (const raw of entries) {
    const entry = raw.trim()
    const parsed = parseBackendUri(entry)
    if (typeof parsed === 'string') throw new StaticBackendError(entry, parsed)
    let weight = 1
    let priority = 0
    const kept: typeof parsed.params = []
    for (const [name, value] of parsed.params) {
      if (name === 'weight') weight = rankParam(entry, 'weight', value)
      else if (name === 'priority') priority = rankParam(entry, 'priority', value)
      else kept.push([name, value])
    }
    const uri = formatBackendUri({ ...parsed, params: kept })
    if (seen.has(uri)) throw new StaticBackendError(entry, `duplicate of another entry in set "${set}"`)
    seen.add(uri)
    specs.push({ id: uri, set, uri, weight, priority, admin: 'active', source: 'static' })
  }
  return specs
}
