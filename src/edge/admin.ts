/**
 * Admin HTTP API (node:http, off the SIP hot path): metrics, health/readiness for orchestrators,
 * backend list and admin state, paged dialogs. Loopback by default; optional bearer token.
 * /healthz and /readyz stay open without the token so kubelet probes need no secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { parseHostPort } from './config.js'
import type { AdminReply } from '../defence/admin.js'
import type { WebrtcPage } from './webrtc_page.js'

export interface AdminTarget {
  /** Prometheus exposition text. */
  metrics(): Promise<string>
  contentType: string
  /** Not ready while draining or with no eligible backend. */
  ready(): { ready: boolean; reason?: string }
  /** id, set, uri, weight, priority, admin, health, activeCalls per backend. */
  backends(): unknown[]
  /** A promise where the answer comes from elsewhere (the primary of worker processes asks them). */
  dialogs(offset: number, limit: number): DialogPage | Promise<DialogPage>
  /** False when no backend has this id. */
  setAdmin(id: string, state: 'active' | 'draining'): boolean | Promise<boolean>
  /** GET/POST/DELETE /bans[/<ip>] (src/defence/admin.ts); undefined when the path is not a ban path. */
  bans?(method: string, path: string, query: URLSearchParams): AdminReply | undefined | Promise<AdminReply | undefined>
}

export interface DialogPage { total: number; items: unknown[] }
export type { AdminReply }

export interface AdminServer {
  readonly port: number
  readonly address: string
  close(): Promise<void>
}

export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:8080'
const MAX_PAGE = 1000
const DEFAULT_PAGE = 100

type AdminLog = Pick<Logger, 'info' | 'warn' | 'error'>

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  })
  res.end(text)
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Constant-time bearer check (hashing first makes the lengths equal). */
function authorised(req: IncomingMessage, tokenDigest: Buffer | undefined): boolean {
  if (!tokenDigest) return true
  const h = req.headers.authorization
  if (typeof h !== 'string' || !/^Bearer /i.test(h)) return false
  return timingSafeEqual(digest(h.slice(7).trim()), tokenDigest)
}

/** A query integer in [min, max], the default when absent, undefined when malformed. */
function intParam(q: URLSearchParams, name: string, def: number, min: number, max: number): number | undefined {
  const v = q.get(name)
  if (v === null || v === '') return def
  if (!/^\d{1,9}$/.test(v)) return undefined
  const n = Number(v)
  return n >= min && n <= max ? n : undefined
}

async function route(target: AdminTarget, req: IncomingMessage, res: ServerResponse, tokenDigest?: Buffer, page?: WebrtcPage): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin.invalid')
  const path = url.pathname
  const method = req.method ?? 'GET'
  const isGet = method === 'GET' || method === 'HEAD'

  // The example softphone: public static files (a browser cannot send the bearer token for a page load).
  const file = isGet && page !== undefined ? await page.get(path) : undefined
  if (file !== undefined) {
    res.writeHead(file.status, { 'content-type': file.type, 'content-length': String(file.body.length), 'cache-control': 'no-store', ...(file.location ? { location: file.location } : {}) })
    res.end(method === 'HEAD' ? undefined : file.body)
    return
  }

  if (path === '/healthz') {
    if (!isGet) return send(res, 405, { error: 'method not allowed' }, { allow: 'GET' })
    return send(res, 200, { status: 'ok' })
  }
  if (path === '/readyz') {
    if (!isGet) return send(res, 405, { error: 'method not allowed' }, { allow: 'GET' })
    const r = target.ready()
    return send(res, r.ready ? 200 : 503, r.ready ? { ready: true } : { ready: false, reason: r.reason ?? 'not ready' })
  }
  if (!authorised(req, tokenDigest)) {
    return send(res, 401, { error: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer realm="sipedge"' })
  }
  if (path === '/metrics') {
    if (!isGet) return send(res, 405, { error: 'method not allowed' }, { allow: 'GET' })
    const text = await target.metrics()
    res.writeHead(200, { 'content-type': target.contentType, 'content-length': String(Buffer.byteLength(text)) })
    res.end(text)
    return
  }
  if (path === '/backends') {
    if (!isGet) return send(res, 405, { error: 'method not allowed' }, { allow: 'GET' })
    return send(res, 200, target.backends())
  }
  if (path === '/dialogs') {
    if (!isGet) return send(res, 405, { error: 'method not allowed' }, { allow: 'GET' })
    const offset = intParam(url.searchParams, 'offset', 0, 0, Number.MAX_SAFE_INTEGER)
    const limit = intParam(url.searchParams, 'limit', DEFAULT_PAGE, 1, MAX_PAGE)
    if (offset === undefined) return send(res, 400, { error: 'offset must be an integer >= 0' })
    if (limit === undefined) return send(res, 400, { error: `limit must be an integer 1..${MAX_PAGE}` })
    const page = await target.dialogs(offset, limit)
    return send(res, 200, { total: page.total, offset, limit, items: page.items })
  }
  // POST /backends/<id>/drain|enable; ids may contain '/' (set/host:port), raw or %2F-encoded.
  const action = /^\/backends\/(.+)\/(drain|enable)$/.exec(path)
  if (action) {
    if (method !== 'POST') return send(res, 405, { error: 'method not allowed' }, { allow: 'POST' })
    let id: string
    try {
      id = decodeURIComponent(action[1]!)
    } catch {
      return send(res, 400, { error: 'bad backend id encoding' })
    }
    const state = action[2] === 'drain' ? 'draining' : 'active'
    if (!(await target.setAdmin(id, state))) return send(res, 404, { error: `no backend ${id}` })
    return send(res, 200, { id, admin: state })
  }
  const bans = await target.bans?.(method, path, url.searchParams)
  if (bans) return send(res, bans.status, bans.body, bans.headers)
  return send(res, 404, { error: 'not found' })
}

/** Starts the admin server on `listen` (`host:port`, port 0 = any). */
export function startAdmin(
  target: AdminTarget,
  opts: { listen?: string; token?: string; log: AdminLog; webrtcPage?: WebrtcPage },
): Promise<AdminServer> {
  const listen = opts.listen ?? DEFAULT_ADMIN_LISTEN
  const hp = parseHostPort(listen)
  if (!hp) return Promise.reject(new Error(`admin: "${listen}" is not host:port`))
  const tokenDigest = opts.token ? digest(opts.token) : undefined
  const log = opts.log

  const server = createServer((req, res) => {
    req.resume() // no endpoint reads a body; drain it so keep-alive works
    route(target, req, res, tokenDigest, opts.webrtcPage).catch((err: unknown) => {
      log.error({ err, path: req.url }, 'admin request failed')
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
      else res.destroy()
    })
  })
  server.requestTimeout = 10_000
  server.headersTimeout = 5_000
  server.maxHeadersCount = 50
  server.maxConnections = 64

  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(hp.port, hp.host, () => {
      server.off('error', reject)
      server.on('error', (err) => log.error({ err }, 'admin server error'))
      const addr = server.address()
      const port = typeof addr === 'object' && addr ? addr.port : hp.port
      log.info({ address: hp.host, port, auth: tokenDigest !== undefined }, 'admin API listening')
      resolve({
        port,
        address: hp.host,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}
