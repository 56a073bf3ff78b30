// How many calls a draining backend still carries: from a local command (Asterisk
// `core show calls count` prints "N active calls" first) and/or from edges' admin `GET /backends`.
import { execFile } from 'node:child_process'
import { formatBackendUri, parseBackendUri } from './backend_uri.js'

export interface CallsProbeOptions {
  /** Shell command whose output's first integer is the active call count. */
  callsCommand?: string
  /** Edge admin base URLs; each `GET <url>/backends` lists entries with `uri` and `activeCalls`. */
  edgeAdmin?: string[]
  /** Bearer token of the edges' admin API (its `adminToken`). */
  edgeAdminToken?: string
  /** This backend's URI, matched in canonical form. */
  uri: string
  timeoutMs?: number
}

/** Result: a count, or the reason it could not be read. */
export type CallsReading = { calls: number } | { error: string }

function runCommand(command: string, timeoutMs: number): Promise<CallsReading> {
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', command], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, stdout) => {
      if (err) return resolve({ error: `calls command failed: ${err.message.split('\n')[0]}` })
      const m = /\d+/.exec(stdout)
      resolve(m ? { calls: Number(m[0]) } : { error: `calls command printed no integer: ${JSON.stringify(stdout.slice(0, 80))}` })
    })
  })
}

function canonical(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return undefined
  const p = parseBackendUri(uri)
  return typeof p === 'string' ? undefined : formatBackendUri(p)
}

async function askEdge(base: string, uri: string, timeoutMs: number, token?: string): Promise<CallsReading> {
  const url = `${base.replace(/\/$/, '')}/backends`
  try {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers })
    if (!res.ok) return { error: `${url}: HTTP ${res.status}` }
    const body = (await res.json()) as unknown
    const list = Array.isArray(body) ? body : (body as { backends?: unknown })?.backends
    if (!Array.isArray(list)) return { error: `${url}: expected an array or {"backends": [...]}` }
    let calls = 0
    for (const entry of list as Array<Record<string, unknown>>) {
      if (entry && canonical(entry.uri) === uri && typeof entry.activeCalls === 'number') calls += entry.activeCalls
    }
    // An edge that does not list us routes nothing to us: count 0.
    return { calls }
  } catch (err) {
    return { error: `${url}: ${(err as Error).message}` }
  }
}

/** Reads every configured source; the count is the largest one read (sources overlap, never add up). */
export async function readActiveCalls(opts: CallsProbeOptions): Promise<CallsReading> {
  const timeoutMs = opts.timeoutMs ?? 5000
  const uri = canonical(opts.uri) ?? opts.uri
  const readings: Array<Promise<CallsReading>> = []
  if (opts.callsCommand) readings.push(runCommand(opts.callsCommand, timeoutMs))
  // Several edges each see their own share of the calls: those add up.
  if (opts.edgeAdmin && opts.edgeAdmin.length > 0) {
    readings.push(
      Promise.all(opts.edgeAdmin.map((b) => askEdge(b, uri, timeoutMs, opts.edgeAdminToken))).then((rs): CallsReading => {
        let calls = 0
        for (const r of rs) {
          if ('error' in r) return r
          calls += r.calls
        }
        return { calls }
      }),
    )
  }
  if (readings.length === 0) return { error: 'no calls source configured' }
  const rs = await Promise.all(readings)
  let best: number | undefined
  for (const r of rs) {
    if ('error' in r) return r
    best = Math.max(best ?? 0, r.calls)
  }
  return { calls: best ?? 0 }
}
