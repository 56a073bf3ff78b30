/**
 * Admin API for bans, mounted by the edge's admin server:
 *   GET    /bans                      -> [{ address, reason, origin, since, until, remainingS, detail }]
 *   POST   /bans/<ip>[?seconds=N]     -> 201 the ban (default duration: defence.banS); 400 bad address / allow-listed
 *   DELETE /bans/<ip>                 -> 200 { address, lifted } (on every edge when bans are shared)
 */
import type { Ban } from './bans.js'
import type { Defence } from './defence.js'

export interface AdminReply {
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** The reply for a /bans request, or undefined when `path` is not one of ours. */
export function bansRoute(defence: Defence | undefined, method: string, path: string, query: URLSearchParams): AdminReply | undefined {
  if (path !== '/bans' && !path.startsWith('/bans/')) return undefined
  if (!defence) return { status: 404, body: { error: 'defence is off (defence.enabled: false)' } }
  if (path === '/bans') {
    if (method !== 'GET' && method !== 'HEAD') return { status: 405, body: { error: 'method not allowed' }, headers: { allow: 'GET' } }
    const now = Date.now()
    return { status: 200, body: defence.list().map((b) => view(b, now)) }
  }
  let address: string
  try {
    address = decodeURIComponent(path.slice('/bans/'.length))
  } catch {
    return { status: 400, body: { error: 'bad address encoding' } }
  }
  if (method === 'POST') {
    const s = query.get('seconds')
    let seconds: number | undefined
    if (s !== null && s !== '') {
      if (!/^\d{1,9}$/.test(s)) return { status: 400, body: { error: 'seconds must be an integer >= 1' } }
      seconds = Number(s)
    }
    const ban = defence.banAddress(address, seconds, 'admin API')
    if (typeof ban === 'string') return { status: 400, body: { error: ban } }
    return { status: 201, body: view(ban, Date.now()) }
  }
  if (method === 'DELETE') return { status: 200, body: { address, lifted: defence.lift(address) } }
  return { status: 405, body: { error: 'method not allowed' }, headers: { allow: 'POST, DELETE' } }
}

function view(b: Ban, now: number): Record<string, unknown> {
  return {
    address: b.address,
    reason: b.reason,
    origin: b.origin,
    since: new Date(b.since).toISOString(),
    until: new Date(b.until).toISOString(),
    remainingS: Math.max(0, Math.round((b.until - now) / 1000)),
    ...(b.detail ? { detail: b.detail } : {}),
  }
}
