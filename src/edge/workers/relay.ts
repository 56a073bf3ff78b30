/**
 * The hand-over of a UDP message that the kernel gave to the wrong worker: a response whose branch names
 * another worker (the peer answered to the shared port, and SO_REUSEPORT hashes by the peer's address, not
 * by who sent the request). It goes to the owner's loopback relay socket with the listener it arrived on
 * and its source, and the owner takes it as if it had received it (it then answers from the same shared
 * port, so the peer sees no difference). One sendto per message handed over; nothing else crosses.
 *
 * Wire: 1 byte version (1), 1 byte listener id, 2 bytes source port, 1 byte address length, address
 * (ASCII), then the SIP message bytes as received.
 */
const VERSION = 1

export function wrap(msg: Buffer, start: number, end: number, listenerId: number, address: string, port: number): Buffer {
  const alen = Buffer.byteLength(address, 'latin1')
  const out = Buffer.allocUnsafe(5 + alen + (end - start))
  out[0] = VERSION
  out[1] = listenerId
  out.writeUInt16BE(port, 2)
  out[4] = alen
  out.write(address, 5, 'latin1')
  msg.copy(out, 5 + alen, start, end)
  return out
}

export interface Unwrapped {
  listenerId: number
  address: string
  port: number
  /** Where the SIP message starts in the datagram. */
  start: number
}

export function unwrap(buf: Buffer): Unwrapped | undefined {
  if (buf.length < 6 || buf[0] !== VERSION) return undefined
  const alen = buf[4]!
  if (buf.length <= 5 + alen) return undefined
  return { listenerId: buf[1]!, port: buf.readUInt16BE(2), address: buf.toString('latin1', 5, 5 + alen), start: 5 + alen }
}
