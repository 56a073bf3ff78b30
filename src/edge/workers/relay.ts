/**
 * The hand-over of a UDP message that the kernel gave to the wrong worker: a response whose branch names
 * another worker (the peer answered to the shared port, and SO_REUSEPORT hashes by the peer's address, not
 * by who sent the request). It goes to the owner's loopback relay socket with the listener it arrived on
 * and its source, and the owner takes it as if it had received it (it then answers from the same shared
 * port, so the peer sees no difference). One sendto per message handed over; nothing else crosses.
 *
 * The same socket carries bytes to write on a connection another worker holds (FLOW, below).
 *
 * Wire: 1 byte version (1), 1 byte listener id, 1 byte transport (index in PROTOS), 2 bytes source port,
 * 1 byte address length, address (ASCII), then the SIP message bytes as received.
 */
import type { Peer, TransportProto } from '../../transport/types.js'

const VERSION = 1
const PROTOS: readonly TransportProto[] = ['udp', 'tcp', 'tls', 'ws', 'wss']
const HEAD = 6

export function wrap(msg: Buffer, start: number, end: number, listenerId: number, source: Peer): Buffer {
  const alen = Buffer.byteLength(source.address, 'latin1')
  const out = Buffer.allocUnsafe(HEAD + alen + (end - start))
  out[0] = VERSION
  out[1] = listenerId
  out[2] = PROTOS.indexOf(source.proto)
  out.writeUInt16BE(source.port, 3)
  out[5] = alen
  out.write(source.address, HEAD, 'latin1')
  msg.copy(out, HEAD + alen, start, end)
  return out
}

export interface Unwrapped {
  listenerId: number
  source: Peer
  /** Where the SIP message starts in the datagram. */
  start: number
}

export function unwrap(buf: Buffer): Unwrapped | undefined {
  if (buf.length < HEAD + 1 || buf[0] !== VERSION) return undefined
  const proto = PROTOS[buf[2]!]
  const alen = buf[5]!
  if (proto === undefined || buf.length <= HEAD + alen) return undefined
  return { listenerId: buf[1]!, source: { proto, address: buf.toString('latin1', HEAD, HEAD + alen), port: buf.readUInt16BE(3) }, start: HEAD + alen }
}

/** A message to write on a TCP/TLS/WS connection held by the receiving worker: 1 byte (2), 1 byte key length, key, bytes. */
const FLOW = 2

export function wrapFlow(key: string, buf: Buffer): Buffer {
  const klen = Buffer.byteLength(key, 'latin1')
  const out = Buffer.allocUnsafe(2 + klen + buf.length)
  out[0] = FLOW
  out[1] = klen
  out.write(key, 2, 'latin1')
  buf.copy(out, 2 + klen)
  return out
}

export function unwrapFlow(buf: Buffer): { key: string; start: number } | undefined {
  if (buf.length < 3 || buf[0] !== FLOW) return undefined
  const klen = buf[1]!
  if (buf.length <= 2 + klen) return undefined
  return { key: buf.toString('latin1', 2, 2 + klen), start: 2 + klen }
}
