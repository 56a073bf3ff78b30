/**
 * HEP3 (Homer Encapsulation Protocol v3) export, like Kamailio's siptrace: every SIP message the
 * edge receives or sends is wrapped with addresses, ports and a timestamp and sent over UDP to a
 * collector (Homer, heplify-server, `sngrep -L udp:host:port`).
 *
 * Wire format: "HEP3", uint16 total length, then chunks of {uint16 vendor 0, uint16 type,
 * uint16 length incl. this 6-byte header, value}, all big endian.
 * The payload is not copied: the header is sent with the original buffer as a second iovec.
 */
import { createSocket, type Socket } from 'node:dgram'
import { parseHostPort } from './config.js'
import type { TransportProto } from '../transport/types.js'

export const HEP_CHUNK = {
  ipFamily: 1,
  ipProto: 2,
  ipv4Src: 3,
  ipv4Dst: 4,
  ipv6Src: 5,
  ipv6Dst: 6,
  srcPort: 7,
  dstPort: 8,
  timeSec: 9,
  timeUsec: 10,
  protoType: 11,
  captureId: 12,
  authKey: 14,
  payload: 15,
} as const

const AF_INET = 2
const AF_INET6 = 10
const IPPROTO_TCP = 6
const IPPROTO_UDP = 17
const PROTO_TYPE_SIP = 1
const CHUNK_HDR = 6
const MAX_HEP = 65535

export interface HepEndpoint {
  address: string
  port: number
}

/**
 * Writes an IPv4 (4 bytes) or IPv6 (16 bytes) address at `off`. Returns bytes written, 0 if the text
 * is not an address. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) counts as IPv4 when `want4`.
 */
function writeIp(buf: Buffer, off: number, ip: string, want4: boolean): number {
  if (want4) {
    const start = ip.startsWith('::ffff:') ? 7 : 0
    return writeIpv4(buf, off, ip, start, ip.length) ? 4 : 0
  }
  if (ip.indexOf(':') < 0) {
    // An IPv4 peer in an IPv6 packet (mixed families): IPv4-mapped form.
    buf.fill(0, off, off + 10)
    buf[off + 10] = 0xff
    buf[off + 11] = 0xff
    return writeIpv4(buf, off + 12, ip, 0, ip.length) ? 16 : 0
  }
  return writeIpv6(buf, off, ip) ? 16 : 0
}

function writeIpv4(buf: Buffer, off: number, ip: string, start: number, end: number): boolean {
  let part = 0
  let value = 0
  let digits = 0
  for (let i = start; i <= end; i++) {
    const c = i < end ? ip.charCodeAt(i) : 46 /* '.' terminator */
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48)
      if (++digits > 3 || value > 255) return false
    } else if (c === 46) {
      if (digits === 0 || part > 3) return false
      buf[off + part++] = value
      value = 0
      digits = 0
    } else return false
  }
  return part === 4
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

const V6_GROUPS = new Uint16Array(8)
const V4_SCRATCH = Buffer.alloc(4)

/** RFC 4291 text form, with `::` and a trailing dotted IPv4; zone ids (`%eth0`) are ignored. */
function writeIpv6(buf: Buffer, off: number, ip: string): boolean {
  let end = ip.indexOf('%')
  if (end < 0) end = ip.length
  const groups = V6_GROUPS
  let n = 0
  let gap = -1
  let i = 0
  if (ip.startsWith('::')) {
    gap = 0
    i = 2
  }
  while (i < end) {
    if (n >= 8) return false
    // A dotted IPv4 tail takes the last two groups.
    const dot = ip.indexOf('.', i)
    const colon = ip.indexOf(':', i)
    if (dot >= 0 && dot < end && (colon < 0 || colon > dot)) {
      if (n > 6) return false
      const tmp = V4_SCRATCH
      if (!writeIpv4(tmp, 0, ip, i, end)) return false
      groups[n++] = (tmp[0]! << 8) | tmp[1]!
      groups[n++] = (tmp[2]! << 8) | tmp[3]!
      i = end
      break
    }
    let v = 0
    let digits = 0
    while (i < end) {
      const h = hexVal(ip.charCodeAt(i))
      if (h < 0) break
      v = (v << 4) | h
      if (++digits > 4) return false
      i++
    }
    if (digits === 0) return false
    groups[n++] = v
    if (i === end) break
    if (ip.charCodeAt(i) !== 58 /* ':' */) return false
    i++
    if (i < end && ip.charCodeAt(i) === 58) {
      if (gap >= 0) return false
      gap = n
      i++
    } else if (i === end) return false
  }
  if (gap < 0 && n !== 8) return false
  if (gap >= 0 && n > 7) return false
  const shift = 8 - n
  for (let g = 0; g < 8; g++) {
    let value = 0
    if (gap < 0 || g < gap) value = groups[g]!
    else if (g >= gap + shift) value = groups[g - shift]!
    buf.writeUInt16BE(value, off + g * 2)
  }
  return true
}

function isV4(ip: string): boolean {
  return ip.indexOf(':') < 0 || (ip.startsWith('::ffff:') && ip.indexOf('.') > 0)
}

/** Writes a generic chunk header at `o`; returns where its value starts. */
function chunkAt(b: Buffer, o: number, type: number, len: number): number {
  b.writeUInt16BE(0, o)
  b.writeUInt16BE(type, o + 2)
  b.writeUInt16BE(CHUNK_HDR + len, o + 4)
  return o + CHUNK_HDR
}

/**
 * Encodes the HEP3 header for one captured message (everything but the payload bytes).
 * `payloadLength` is written into the payload chunk header; the caller appends the payload.
 * Returns undefined when an address can't be encoded or the packet would exceed 64 KiB.
 */
export function encodeHepHeader(
  payloadLength: number,
  src: HepEndpoint,
  dst: HepEndpoint,
  proto: TransportProto,
  timeMs: number,
  captureId: number,
  password?: string,
): Buffer | undefined {
  const v4 = isV4(src.address) && isV4(dst.address)
  const addrLen = v4 ? 4 : 16
  const authLen = password ? Buffer.byteLength(password) : 0
  const headerLen =
    6 + // HEP3 + length
    (CHUNK_HDR + 1) * 2 + // family, proto
    (CHUNK_HDR + addrLen) * 2 +
    (CHUNK_HDR + 2) * 2 + // ports
    (CHUNK_HDR + 4) * 2 + // time
    (CHUNK_HDR + 1) + // proto type
    (CHUNK_HDR + 4) + // capture id
    (authLen > 0 ? CHUNK_HDR + authLen : 0) +
    CHUNK_HDR // payload chunk header
  const total = headerLen + payloadLength
  if (total > MAX_HEP) return undefined

  const b = Buffer.allocUnsafe(headerLen) // every byte is written below
  b.write('HEP3', 0, 'latin1')
  b.writeUInt16BE(total, 4)
  let o = 6
  b[chunkAt(b, o, HEP_CHUNK.ipFamily, 1)] = v4 ? AF_INET : AF_INET6
  o += CHUNK_HDR + 1
  // TLS and WebSocket run over TCP: HEP's field is the IP protocol.
  b[chunkAt(b, o, HEP_CHUNK.ipProto, 1)] = proto === 'udp' ? IPPROTO_UDP : IPPROTO_TCP
  o += CHUNK_HDR + 1
  if (writeIp(b, chunkAt(b, o, v4 ? HEP_CHUNK.ipv4Src : HEP_CHUNK.ipv6Src, addrLen), src.address, v4) === 0) return undefined
  o += CHUNK_HDR + addrLen
  if (writeIp(b, chunkAt(b, o, v4 ? HEP_CHUNK.ipv4Dst : HEP_CHUNK.ipv6Dst, addrLen), dst.address, v4) === 0) return undefined
  o += CHUNK_HDR + addrLen
  b.writeUInt16BE(src.port & 0xffff, chunkAt(b, o, HEP_CHUNK.srcPort, 2))
  o += CHUNK_HDR + 2
  b.writeUInt16BE(dst.port & 0xffff, chunkAt(b, o, HEP_CHUNK.dstPort, 2))
  o += CHUNK_HDR + 2
  const sec = Math.floor(timeMs / 1000)
  b.writeUInt32BE(sec >>> 0, chunkAt(b, o, HEP_CHUNK.timeSec, 4))
  o += CHUNK_HDR + 4
  b.writeUInt32BE(Math.floor((timeMs - sec * 1000) * 1000) >>> 0, chunkAt(b, o, HEP_CHUNK.timeUsec, 4))
  o += CHUNK_HDR + 4
  b[chunkAt(b, o, HEP_CHUNK.protoType, 1)] = PROTO_TYPE_SIP
  o += CHUNK_HDR + 1
  b.writeUInt32BE(captureId >>> 0, chunkAt(b, o, HEP_CHUNK.captureId, 4))
  o += CHUNK_HDR + 4
  if (authLen > 0) {
    b.write(password!, chunkAt(b, o, HEP_CHUNK.authKey, authLen), 'utf8')
    o += CHUNK_HDR + authLen
  }
  // Payload chunk: header only, its value is the caller's buffer.
  chunkAt(b, o, HEP_CHUNK.payload, payloadLength)
  return b
}

export interface HepOptions {
  /** `udp:host:port` or `host:port`. */
  address: string
  id: number
  password?: string
  /** Called once per packet: true = sent, false = dropped (unencodable, too large, send error). */
  onResult?: (sent: boolean) => void
}

/** Fire-and-forget UDP exporter. Capture never throws and never blocks the proxy. */
export class HepExporter {
  private readonly socket: Socket
  private readonly host: string
  private readonly port: number
  private closed = false
  sent = 0
  dropped = 0

  constructor(private readonly opts: HepOptions) {
    const body = opts.address.startsWith('udp:') ? opts.address.slice(4) : opts.address
    const hp = parseHostPort(body)
    if (!hp) throw new Error(`hep: "${opts.address}" is not udp:host:port`)
    this.host = hp.host
    this.port = hp.port
    this.socket = createSocket(hp.host.includes(':') ? 'udp6' : 'udp4')
    this.socket.on('error', () => this.drop()) // collector gone: keep proxying, count drops
    this.socket.unref()
  }

  capture(payload: Buffer, src: HepEndpoint, dst: HepEndpoint, proto: TransportProto, timeMs: number = Date.now()): void {
    if (this.closed) return
    const header = encodeHepHeader(payload.length, src, dst, proto, timeMs, this.opts.id, this.opts.password)
    if (!header) return this.drop()
    this.socket.send([header, payload], this.port, this.host, this.afterSend)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.socket.close()
  }

  private readonly afterSend = (err: Error | null): void => {
    if (err) return this.drop()
    this.sent++
    this.opts.onResult?.(true)
  }

  private drop(): void {
    this.dropped++
    this.opts.onResult?.(false)
  }
}

export interface DecodedHep {
  family: number
  proto: number
  srcIp: string
  dstIp: string
  srcPort: number
  dstPort: number
  timeSec: number
  timeUsec: number
  protoType: number
  captureId: number
  authKey?: string
  payload: Buffer
}

/** Decodes a HEP3 packet (for tests and tooling); throws on malformed input. */
export function decodeHep(buf: Buffer): DecodedHep {
  if (buf.length < 6 || buf.toString('latin1', 0, 4) !== 'HEP3') throw new Error('not HEP3')
  const total = buf.readUInt16BE(4)
  if (total !== buf.length) throw new Error(`HEP3 length ${total} != packet ${buf.length}`)
  const d: Partial<DecodedHep> = {}
  let o = 6
  while (o < total) {
    if (o + CHUNK_HDR > total) throw new Error('truncated chunk header')
    const type = buf.readUInt16BE(o + 2)
    const len = buf.readUInt16BE(o + 4)
    if (len < CHUNK_HDR || o + len > total) throw new Error(`bad chunk length ${len}`)
    const v = buf.subarray(o + CHUNK_HDR, o + len)
    switch (type) {
      case HEP_CHUNK.ipFamily: d.family = v[0]!; break
      case HEP_CHUNK.ipProto: d.proto = v[0]!; break
      case HEP_CHUNK.ipv4Src: d.srcIp = Array.from(v).join('.'); break
      case HEP_CHUNK.ipv4Dst: d.dstIp = Array.from(v).join('.'); break
      case HEP_CHUNK.ipv6Src: d.srcIp = ipv6Text(v); break
      case HEP_CHUNK.ipv6Dst: d.dstIp = ipv6Text(v); break
      case HEP_CHUNK.srcPort: d.srcPort = v.readUInt16BE(0); break
      case HEP_CHUNK.dstPort: d.dstPort = v.readUInt16BE(0); break
      case HEP_CHUNK.timeSec: d.timeSec = v.readUInt32BE(0); break
      case HEP_CHUNK.timeUsec: d.timeUsec = v.readUInt32BE(0); break
      case HEP_CHUNK.protoType: d.protoType = v[0]!; break
      case HEP_CHUNK.captureId: d.captureId = v.readUInt32BE(0); break
      case HEP_CHUNK.authKey: d.authKey = v.toString('utf8'); break
      case HEP_CHUNK.payload: d.payload = v; break
    }
    o += len
  }
  if (!d.payload) throw new Error('no payload chunk')
  return d as DecodedHep
}

/** Full (uncompressed) form, lower case: enough to compare in tests. */
function ipv6Text(v: Buffer): string {
  const parts: string[] = []
  for (let i = 0; i < 16; i += 2) parts.push(v.readUInt16BE(i).toString(16))
  return parts.join(':')
}
