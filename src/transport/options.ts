import type { Inbound, Listener, Peer } from './types.js'

/** Certificates for tls/wss listeners and outgoing TLS. Files are PEM; read at start and on reloadTls(). */
export interface TlsOptions {
  /** Our certificate, leaf first then intermediates (the chain sent to peers). Also our client certificate. */
  certFile?: string
  keyFile?: string
  /** CAs that outgoing TLS verifies servers against; Node's bundled roots when absent. */
  caFile?: string
  /** CAs that sign acceptable client certificates (listeners with `client-cert require`); `caFile` when absent. */
  clientCaFile?: string
  /** A TLS handshake (in or out) not done by then is dropped; slow-handshake clients tie nothing up longer. */
  handshakeTimeoutMs?: number
}

/** WebSocket listeners (RFC 7118). */
export interface WsOptions {
  /** Browser Origins allowed to connect (exact, case-insensitive, e.g. `https://agents.example.com`); any when empty. */
  allowedOrigins?: string[]
  /** Open WebSocket connections per source address beyond which upgrades are refused. */
  maxConnectionsPerSource?: number
  /** Ping every connection this often; one that has not answered the previous ping is closed. */
  pingIntervalMs?: number
}

export interface TransportOptions {
  /** Largest message accepted on a stream (header section + body), bytes. */
  maxMessageSize?: number
  /** Close a TCP connection after this long without traffic either way. */
  tcpIdleTimeoutMs?: number
  /** Open TCP/TLS/WebSocket connections (inbound + outbound) beyond which new ones are refused. */
  maxConnections?: number
  /** Give up on an outbound TCP connect after this long. */
  connectTimeoutMs?: number
  /** RFC 3261 §18.1.1: requests larger than this should go over a congestion-controlled transport. */
  udpMtu?: number
  /** SO_RCVBUF/SO_SNDBUF for UDP sockets, bytes; kernel default when absent. */
  udpBufferSize?: number
  /** Bytes allowed to wait in one TCP connection's write queue (slow or stuck peer) before sends fail. */
  maxWriteQueue?: number
  /** SO_REUSEPORT on every listener: worker processes bind the same ports and the kernel spreads peers over them (Node >= 22.12). */
  reusePort?: boolean
  /**
   * Worker processes: each UDP listener that faces the backends gets a twin of its own on an ephemeral port
   * of the same address, which requests toward the backends leave from and name in their Via, so the answers
   * come back to the worker that sent them instead of the one the kernel maps the backend's address to.
   */
  ownInternalPorts?: boolean
  tls?: TlsOptions
  ws?: WsOptions
}

export interface TransportHandlers {
  onMessage(inbound: Inbound): void
  /** `buf` spans the bad message (UDP datagram, WebSocket message, or stream frame / unframeable bytes). */
  onParseError(err: Error, buf: Buffer, source: Peer, listener: Listener, connId?: number): void
  onSendError(err: Error, dest: Peer): void
  /** A handler threw. Optional: without it a process warning is emitted; the transport keeps serving. */
  onHandlerError?(err: unknown): void
  /**
   * A connection has been idle for tcpIdleTimeoutMs: true keeps it open for another period. A client's
   * connection is its only address while a call lasts (the edge cannot connect back to its ephemeral port).
   */
  keepOpen?(peer: Peer): boolean
}

export interface ResolvedOptions {
  maxMessageSize: number
  tcpIdleTimeoutMs: number
  maxConnections: number
  connectTimeoutMs: number
  udpMtu: number
  maxWriteQueue: number
  udpBufferSize: number | undefined
  reusePort: boolean
  ownInternalPorts: boolean
  tls: TlsOptions
  tlsHandshakeTimeoutMs: number
  wsAllowedOrigins: ReadonlySet<string>
  wsMaxConnectionsPerSource: number
  wsPingIntervalMs: number
}

export function resolveOptions(o: TransportOptions = {}): ResolvedOptions {
  return {
    maxMessageSize: o.maxMessageSize ?? 65535,
    tcpIdleTimeoutMs: o.tcpIdleTimeoutMs ?? 300_000,
    maxConnections: o.maxConnections ?? 4096,
    connectTimeoutMs: o.connectTimeoutMs ?? 5000,
    udpMtu: o.udpMtu ?? 1300,
    maxWriteQueue: o.maxWriteQueue ?? 1024 * 1024,
    udpBufferSize: o.udpBufferSize,
    reusePort: o.reusePort ?? false,
    ownInternalPorts: o.ownInternalPorts ?? false,
    tls: { ...o.tls },
    tlsHandshakeTimeoutMs: o.tls?.handshakeTimeoutMs ?? 10_000,
    wsAllowedOrigins: new Set((o.ws?.allowedOrigins ?? []).map((x) => x.toLowerCase())),
    wsMaxConnectionsPerSource: o.ws?.maxConnectionsPerSource ?? 100,
    wsPingIntervalMs: o.ws?.pingIntervalMs ?? 30_000,
  }
}

/** An error with a Node-style `code`, for conditions we detect ourselves. */
export function codedError(code: string, message: string): Error {
  const err = new Error(message) as Error & { code: string }
  err.code = code
  return err
}
