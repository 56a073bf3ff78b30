import { isIPv4 } from 'node:net'

// STUN keepalives on a SIP UDP port (RFC 5626 §4.4.2, §8.4; RFC 5389): phones behind NAT send Binding
// requests to the edge's SIP port to hold their pinhole open and to learn their public address. They are
// told apart from SIP by their first byte (STUN starts with two zero bits; SIP with a letter or CR/LF) and the
// magic cookie, never reach the SIP parser (no parse error, no log line), and a Binding request is answered
// with the source address it came from (XOR-MAPPED-ADDRESS), as the RFC asks of an edge proxy.

const MAGIC = 0x2112a442
const HEADER = 20
const BINDING_REQUEST = 0x0001
const BINDING_SUCCESS = 0x0101
const XOR_MAPPED_ADDRESS = 0x0020

/** True when the datagram is a STUN message (any type): cheap, the first byte decides for every SIP message. */
export function isStun(buf: Buffer): boolean {
  return buf.length >= HEADER && buf[0]! < 2 && buf.readUInt32BE(4) === MAGIC && (buf.readUInt16BE(2) & 3) === 0
}

/** The Binding success response to a Binding request from address:port, or undefined (indications, responses). */
export function stunBindingResponse(req: Buffer, address: string, port: number): Buffer | undefined {
  if (req.readUInt16BE(0) !== BINDING_REQUEST) return undefined
  const v4 = isIPv4(address)
  const addrLen = v4 ? 4 : 16
  const out = Buffer.alloc(HEADER + 4 + 4 + addrLen)
  out.writeUInt16BE(BINDING_SUCCESS, 0)
  out.writeUInt16BE(4 + 4 + addrLen, 2)
  req.copy(out, 4, 4, HEADER) // magic cookie and transaction id
  out.writeUInt16BE(XOR_MAPPED_ADDRESS, HEADER)
  out.writeUInt16BE(4 + addrLen, HEADER + 2)
  out.writeUInt8(v4 ? 1 : 2, HEADER + 5)
  out.writeUInt16BE(port ^ (MAGIC >>> 16), HEADER + 6)
  const raw = v4 ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address)
  // XOR with the cookie (IPv4), or with cookie + transaction id (IPv6): bytes 4..20 of the header.
  for (let i = 0; i < addrLen; i++) out[HEADER + 8 + i] = raw[i]! ^ out[4 + i]!
  return out
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('::') as [string, string | undefined]
  const parse = (s: string | undefined): number[] => (s ? s.split(':').map((h) => parseInt(h, 16)) : [])
  const a = parse(head)
  const b = parse(tail)
  const groups = tail === undefined ? a : [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(g & 0xffff, i * 2))
  return out
}
