// The DNS message format (RFC 1035 §4) for the few record types SIP next hops need: A, AAAA, SRV (RFC 2782),
// NAPTR (RFC 3403), CNAME. One query out, one answer in, each record with its TTL: node's dns.Resolver gives
// TTLs for A/AAAA only, and RFC 3263 caching is only as good as the TTLs of the NAPTR and SRV links too.

export const QTYPE = { A: 1, CNAME: 5, AAAA: 28, SRV: 33, NAPTR: 35 } as const
const OPT = 41
/** EDNS0 payload size we offer (RFC 6891; 1232 avoids IP fragmentation, as the 2020 DNS flag day chose). */
const EDNS_PAYLOAD = 1232

export interface SrvData { priority: number; weight: number; port: number; target: string }
export interface NaptrData { order: number; preference: number; flags: string; service: string; regexp: string; replacement: string }

export type Rdata =
  | { type: 1 | 28; address: string }
  | { type: 5; target: string }
  | ({ type: 33 } & SrvData)
  | ({ type: 35 } & NaptrData)
  | { type: 0 }

export interface Record { name: string; ttl: number; data: Rdata }

export interface DnsAnswer {
  id: number
  /** RCODE: 0 no error, 2 SERVFAIL, 3 NXDOMAIN, ... */
  rcode: number
  truncated: boolean
  question: { name: string; type: number } | undefined
  answers: Record[]
  additionals: Record[]
}

/** A recursive query (RD) for one name and type, with an EDNS0 OPT record. Throws on a name DNS cannot carry. */
export function encodeQuery(id: number, name: string, type: number): Buffer {
  const qname = encodeName(name)
  const buf = Buffer.alloc(12 + qname.length + 4 + 11)
  buf.writeUInt16BE(id, 0)
  buf.writeUInt16BE(0x0100, 2) // RD
  buf.writeUInt16BE(1, 4) // QDCOUNT
  buf.writeUInt16BE(1, 10) // ARCOUNT: the OPT record
  qname.copy(buf, 12)
  let o = 12 + qname.length
  buf.writeUInt16BE(type, o)
  buf.writeUInt16BE(1, o + 2) // IN
  o += 4
  buf[o] = 0 // root name
  buf.writeUInt16BE(OPT, o + 1)
  buf.writeUInt16BE(EDNS_PAYLOAD, o + 3)
  // extended RCODE, version, flags, RDLEN: all zero
  return buf
}

function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name
  const labels = trimmed === '' ? [] : trimmed.split('.')
  const parts: number[] = []
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1')
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`"${name}" is not a DNS name (label of ${bytes.length} bytes)`)
    parts.push(bytes.length, ...bytes)
  }
  parts.push(0)
  if (parts.length > 255) throw new Error(`"${name}" is longer than a DNS name may be`)
  return Buffer.from(parts)
}

/** Parses an answer; throws on a message too short or malformed to trust. */
export function decodeAnswer(buf: Buffer): DnsAnswer {
  if (buf.length < 12) throw new Error('DNS message shorter than its header')
  const id = buf.readUInt16BE(0)
  const flags = buf.readUInt16BE(2)
  const qd = buf.readUInt16BE(4)
  const an = buf.readUInt16BE(6)
  const ns = buf.readUInt16BE(8)
  const ar = buf.readUInt16BE(10)
  const cur = { o: 12 }
  let question: DnsAnswer['question']
  for (let i = 0; i < qd; i++) {
    const name = readName(buf, cur)
    need(buf, cur.o + 4)
    const type = buf.readUInt16BE(cur.o)
    cur.o += 4
    question ??= { name, type }
  }
  const answers: Record[] = []
  const additionals: Record[] = []
  for (let i = 0; i < an; i++) answers.push(readRecord(buf, cur))
  for (let i = 0; i < ns; i++) readRecord(buf, cur)
  for (let i = 0; i < ar; i++) {
    // A truncated additional section is not worth failing the answer for.
    try {
      additionals.push(readRecord(buf, cur))
    } catch {
      break
    }
  }
  return { id, rcode: flags & 0x0f, truncated: (flags & 0x0200) !== 0, question, answers, additionals }
}

function need(buf: Buffer, end: number): void {
  if (end > buf.length) throw new Error('DNS message truncated')
}

function readRecord(buf: Buffer, cur: { o: number }): Record {
  const name = readName(buf, cur)
  need(buf, cur.o + 10)
  const type = buf.readUInt16BE(cur.o)
  const ttl = buf.readUInt32BE(cur.o + 4)
  const len = buf.readUInt16BE(cur.o + 8)
  const start = cur.o + 10
  const end = start + len
  need(buf, end)
  cur.o = end
  // RFC 2181 §8: a TTL with the top bit set is treated as zero.
  return { name, ttl: ttl > 0x7fffffff ? 0 : ttl, data: readData(buf, type, start, end) }
}

function readData(buf: Buffer, type: number, start: number, end: number): Rdata {
  switch (type) {
    case QTYPE.A:
      if (end - start !== 4) throw new Error('bad A record')
      return { type: 1, address: `${buf[start]}.${buf[start + 1]}.${buf[start + 2]}.${buf[start + 3]}` }
    case QTYPE.AAAA: {
      if (end - start !== 16) throw new Error('bad AAAA record')
      const groups: string[] = []
      for (let i = start; i < end; i += 2) groups.push(buf.readUInt16BE(i).toString(16))
      return { type: 28, address: groups.join(':') }
    }
    case QTYPE.CNAME:
      return { type: 5, target: readName(buf, { o: start }) }
    case QTYPE.SRV: {
      if (end - start < 7) throw new Error('bad SRV record')
      return { type: 33, priority: buf.readUInt16BE(start), weight: buf.readUInt16BE(start + 2), port: buf.readUInt16BE(start + 4), target: readName(buf, { o: start + 6 }) }
    }
    case QTYPE.NAPTR: {
      if (end - start < 7) throw new Error('bad NAPTR record')
      const cur = { o: start + 4 }
      const flags = readString(buf, cur, end)
      const service = readString(buf, cur, end)
      const regexp = readString(buf, cur, end)
      const replacement = readName(buf, cur)
      return { type: 35, order: buf.readUInt16BE(start), preference: buf.readUInt16BE(start + 2), flags, service, regexp, replacement }
    }
    default:
      return { type: 0 }
  }
}

function readString(buf: Buffer, cur: { o: number }, end: number): string {
  const len = buf[cur.o]!
  if (cur.o + 1 + len > end) throw new Error('bad character-string')
  const s = buf.toString('latin1', cur.o + 1, cur.o + 1 + len)
  cur.o += 1 + len
  return s
}

/** A domain name, following compression pointers (each must point backwards: no loops). */
function readName(buf: Buffer, cur: { o: number }): string {
  let o = cur.o
  let out = ''
  let jumped = false
  let limit = buf.length
  for (;;) {
    need(buf, o + 1)
    const len = buf[o]!
    if (len === 0) {
      if (!jumped) cur.o = o + 1
      return out === '' ? '.' : out
    }
    if ((len & 0xc0) === 0xc0) {
      need(buf, o + 2)
      const ptr = buf.readUInt16BE(o) & 0x3fff
      if (ptr >= limit || ptr >= o) throw new Error('bad DNS name pointer')
      if (!jumped) cur.o = o + 2
      jumped = true
      limit = ptr
      o = ptr
      continue
    }
    if (len > 63) throw new Error('bad DNS label')
    need(buf, o + 1 + len)
    out += (out === '' ? '' : '.') + buf.toString('latin1', o + 1, o + 1 + len)
    if (out.length > 255) throw new Error('DNS name too long')
    o += 1 + len
  }
}
