import type { SipMessage } from '../sip/index.js'

/** `tls` is SIP over TLS on TCP (RFC 3261 §26); `ws`/`wss` are SIP over WebSocket (RFC 7118), inbound only. */
export type TransportProto = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss'

/** Which side of the edge a listener or a peer belongs to. */
export type Side = 'public' | 'internal'

/** A listen address as given on the command line: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `wss:0.0.0.0:8443 path /sip`. */
export interface ListenSpec {
  proto: TransportProto
  host: string
  port: number
  side: Side
  /** Address to advertise in Via/Record-Route when it differs from the bound one (NAT, 0.0.0.0). */
  advertise?: string
  /** ws/wss: the only HTTP path upgraded (any path when absent). */
  path?: string
  /** tls/wss: `require` refuses clients without a certificate signed by the client CA (mutual TLS). */
  clientCert?: 'none' | 'require'
}

/** Where a message came from, or where it should go. */
export interface Peer {
  proto: TransportProto
  address: string
  port: number
  /**
   * Outgoing TLS: the name sent in SNI and checked against the server's certificate. Without it the
   * certificate must name the IP address (subjectAltName IP).
   */
  servername?: string
  /**
   * A flow the peer opened (an accepted TCP/TLS connection named by a dialog's token): reachable only over
   * that connection; once it is gone the send fails with ENOTCONN instead of dialling the peer's address
   * (its source port is ephemeral, its Contact may name anything). WebSocket peers always are.
   */
  accepted?: boolean
}

/** A bound socket (UDP) or server (TCP) of the edge. */
export interface Listener {
  readonly id: number
  readonly spec: ListenSpec
  /** host:port to put in Via sent-by and Record-Route for this listener (IPv6 in brackets). */
  readonly hostport: string
  /** The actually bound port (useful with port 0 in tests). */
  readonly port: number
}

/** One received, framed and parsed message with its origin. */
export interface Inbound {
  msg: SipMessage
  source: Peer
  listener: Listener
  /** For TCP, TLS and WebSocket: the connection it arrived on, so that replies can reuse it. */
  connId?: number
}

export interface TransportEvents {
  /** A message was framed and parsed. */
  message(inbound: Inbound): void
  /**
   * Bytes arrived that could not be parsed. `buf` spans the bad message (UDP datagram or the TCP frame).
   * The proxy answers 400 where it can, logs once per source, and moves on.
   */
  parseError(err: Error, buf: Buffer, source: Peer, listener: Listener, connId?: number): void
  /** Sending failed (ICMP unreachable, TCP refused/reset): a failure signal for the transaction. */
  sendError(err: Error, dest: Peer): void
}
