import { isUtf8 } from 'node:buffer'
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { SecureContextOptions } from 'node:tls'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { skipKeepAlives } from '../sip/index.js'
import { deliver, writeQueueFull, type Connection, type TransportContext } from './connection.js'
import { peerKey } from './connection-table.js'
import { ServerListener } from './server-listener.js'
import { tlsServerOptions, type SecureListener } from './tls.js'
import type { ListenSpec, Peer } from './types.js'

/** RFC 7118 §4: the WebSocket subprotocol a SIP client must offer, and that we echo. */
export const SIP_SUBPROTOCOL = 'sip'

const PONG = Buffer.from('\r\n')

/** True when a `Sec-WebSocket-Protocol` header (comma-separated tokens) offers `sip`. */
function offersSip(header: string | undefined): boolean {
  if (header === undefined) return false
  for (const p of header.split(',')) if (p.trim() === SIP_SUBPROTOCOL) return true
  return false
}

/**
 * A `ws:` or `wss:` listener (RFC 7118): an HTTP(S) server that upgrades only requests that offer the
 * `sip` subprotocol, on the configured path, from an allowed Origin, within the per-source limit. Each
 * WebSocket message is one SIP message; connections are pinged and dropped when they stop answering.
 */
export class WsListener extends ServerListener implements SecureListener {
  private readonly httpServer: HttpServer | HttpsServer
  private readonly wss: WebSocketServer
  private readonly perSource = new Map<string, number>()
  readonly connections = new Set<WsConnection>()
  private pingTimer: NodeJS.Timeout | undefined

  constructor(id: number, spec: ListenSpec, ctx: TransportContext) {
    super(id, spec, ctx)
    if (spec.proto === 'wss') {
      const https = createHttpsServer(tlsServerOptions(spec, ctx), this.onRequest)
      https.on('tlsClientError', this.onHandshakeError)
      this.httpServer = https
    } else {
      this.httpServer = createHttpServer(this.onRequest)
    }
    // Clients that connect and never finish their upgrade request are dropped after the handshake timeout.
    this.httpServer.headersTimeout = ctx.opts.tlsHandshakeTimeoutMs
    this.httpServer.requestTimeout = ctx.opts.tlsHandshakeTimeoutMs
    this.httpServer.on('upgrade', this.onUpgrade)
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // ws closes with 1009 (message too big) beyond this.
      maxPayload: ctx.opts.maxMessageSize,
      handleProtocols: (offered: Set<string>) => (offered.has(SIP_SUBPROTOCOL) ? SIP_SUBPROTOCOL : false),
    })
    this.attach(this.httpServer)
  }

  setSecureContext(options: SecureContextOptions): void {
    if (this.spec.proto === 'wss') (this.httpServer as HttpsServer).setSecureContext(options)
  }

  override async start(): Promise<void> {
    await super.start()
    this.pingTimer = setInterval(this.pingAll, this.ctx.opts.wsPingIntervalMs)
    this.pingTimer.unref()
  }

  override close(): Promise<void> {
    clearInterval(this.pingTimer)
    for (const c of this.connections) c.destroy()
    return super.close()
  }

  /** Called by a connection when it closes. */
  gone(conn: WsConnection): void {
    if (!this.connections.delete(conn)) return
    const n = (this.perSource.get(conn.peer.address) ?? 1) - 1
    if (n > 0) this.perSource.set(conn.peer.address, n)
    else this.perSource.delete(conn.peer.address)
  }

  private readonly pingAll = (): void => {
    for (const c of this.connections) c.heartbeat()
  }

  private readonly onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(426, { Connection: 'close', 'Content-Type': 'text/plain', Upgrade: 'websocket' })
    res.end('SIP over WebSocket (RFC 7118): upgrade with Sec-WebSocket-Protocol: sip\n')
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // A reset in the middle of the upgrade must not become an uncaught error.
    socket.on('error', noop)
    const reason = this.refusal(req)
    if (reason !== undefined) {
      this.refused++
      const body = `${reason[1]}\n`
      socket.end(
        `HTTP/1.1 ${reason[0]} ${STATUS_CODES[reason[0]] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
      return
    }
    const address = req.socket.remoteAddress as string
    const port = req.socket.remotePort as number
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new WsConnection(this.ctx, ws, this, { proto: this.spec.proto, address, port })
      this.connections.add(conn)
      this.perSource.set(address, (this.perSource.get(address) ?? 0) + 1)
    })
  }

  /** Why an upgrade request is refused, as [HTTP status, text], or undefined to accept it. */
  private refusal(req: IncomingMessage): [number, string] | undefined {
    if (this.spec.path !== undefined && pathOf(req.url) !== this.spec.path) return [404, `no WebSocket service at this path; use ${this.spec.path}`]
    if (!offersSip(req.headers['sec-websocket-protocol'])) return [400, 'Sec-WebSocket-Protocol: sip is required (RFC 7118)']
    // Origin guards browser users against other sites' pages; non-browser clients send none (and could forge it).
    const origin = req.headers.origin
    if (this.ctx.opts.wsAllowedOrigins.size > 0 && origin !== undefined && !this.ctx.opts.wsAllowedOrigins.has(origin.toLowerCase())) {
      return [403, `Origin ${origin} is not allowed`]
    }
    const address = req.socket.remoteAddress
    if (address === undefined || req.socket.remotePort === undefined) return [400, 'no remote address']
    if ((this.perSource.get(address) ?? 0) >= this.ctx.opts.wsMaxConnectionsPerSource) return [429, 'too many WebSocket connections from this address']
    if (this.ctx.table.size >= this.ctx.opts.maxConnections) return [503, 'connection limit reached']
    return undefined
  }
}

function noop(): void {}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/'
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q)
}

/** One accepted WebSocket connection: each message in is one SIP message; each write is one message out. */
export class WsConnection implements Connection {
  readonly id: number
  readonly key: string
  readonly peer: Peer
  readonly inbound = true
  /** Answered (or sent something) since the last ping. */
  private alive = true
  private closed = false

  constructor(
    private readonly ctx: TransportContext,
    private readonly ws: WebSocket,
    readonly listener: WsListener,
    peer: Peer,
  ) {
    this.id = ctx.table.nextId()
    this.peer = Object.freeze(peer)
    this.key = peerKey(peer.proto, peer.address, peer.port)
    ws.on('message', this.onMessage)
    ws.on('pong', this.onPong)
    // Protocol errors (bad frames, oversized messages) close the connection with the right code; nothing to add.
    ws.on('error', noop)
    ws.on('close', this.onClose)
    ctx.table.add(this)
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN
  }

  write(buf: Buffer): void {
    if (!this.isOpen || writeQueueFull(this.ctx, this, this.ws.bufferedAmount + buf.length)) return
    // Text frames for SIP; a body that is not UTF-8 (binary MIME parts) needs a binary frame.
    this.ws.send(buf, { binary: !isUtf8(buf) })
  }

  destroy(): void {
    this.ws.terminate()
  }

  heartbeat(): void {
    if (!this.alive) return this.destroy()
    this.alive = false
    if (this.isOpen) this.ws.ping()
  }

  private readonly onPong = (): void => {
    this.alive = true
  }

  private readonly onMessage = (data: RawData): void => {
    this.alive = true
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
    if (skipKeepAlives(buf, 0, buf.length) === buf.length) {
      // RFC 5626 CRLF keep-alive as some WebSocket clients (SIP.js) send it: answer a ping, ignore a pong.
      if (buf.length >= 4 && this.isOpen) this.ws.send(PONG)
      return
    }
    // One WebSocket message is one SIP message (RFC 7118 §5.1): no stream framing, boundaries stay in sync.
    deliver(this.ctx, this, buf, 0, buf.length)
  }

  private readonly onClose = (): void => {
    this.closed = true
    this.ctx.table.remove(this)
    this.listener.gone(this)
  }
}
