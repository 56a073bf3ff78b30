// SIGHUP: which keys of a new config need a restart, and the config that applies meanwhile (the running values
// of those keys). Restart-only keys may be dotted (`media.localAddress`): only that leaf is compared.
import { RESTART_KEYS, type EdgeConfig } from './config.js'

/** The restart-only keys whose value differs between the running config and `next` (`changed`: top-level keys). */
export function restartNeeded(running: EdgeConfig, next: EdgeConfig, changed: readonly string[]): string[] {
  return RESTART_KEYS.filter((k) => (k.includes('.') ? changed.includes(k.split('.')[0]!) && !sameAt(running, next, k) : changed.includes(k)))
}

function valueAt(obj: EdgeConfig, path: string): unknown {
  let o: unknown = obj
  for (const p of path.split('.')) o = (o as Record<string, unknown> | undefined)?.[p]
  return o
}

function sameAt(a: EdgeConfig, b: EdgeConfig, path: string): boolean {
  return JSON.stringify(valueAt(a, path)) === JSON.stringify(valueAt(b, path))
}

/** `next` with the running values of the keys (top-level or dotted) that need a restart. */
export function keepRunning(running: EdgeConfig, next: EdgeConfig, keys: string[]): EdgeConfig {
  const out = structuredClone(next) as unknown as Record<string, unknown>
  for (const k of keys) {
    const parts = k.split('.')
    let o = out
    for (const p of parts.slice(0, -1)) o = o[p] as Record<string, unknown>
    const v = valueAt(running, k)
    if (v === undefined) delete o[parts[parts.length - 1]!]
    else o[parts[parts.length - 1]!] = structuredClone(v)
  }
  return out as unknown as EdgeConfig
}
