// Bencode (BEP 3) for rtpengine's NG protocol. Hand-written because the npm `bencode` 4.x decoder
// throws on dicts when given an encoding, and because decoding hostile or truncated datagrams must be
// strict and bounded: every failure is a BencodeError, never a crash, a hang or a huge allocation.

/** A decoded value. Strings are latin1 JS strings (one char per byte, so lossless) or Buffers. */
export type BValue = string | Buffer | number | BValue[] | BDict
export interface BDict { [key: string]: BValue }

/** What `encode` accepts: `undefined`/`null` dict values are skipped (optional NG flags). */
export type BInput = string | Buffer | number | boolean | readonly BInput[] | { readonly [key: string]: BInput | undefined | null }

export class BencodeError extends Error {
  /** Byte offset in the input where decoding stopped (-1 for encode errors). */
  readonly offset: number
  constructor(message: string, offset: number) {
    super(offset >= 0 ? `bencode: ${message} at offset ${offset}` : `bencode: ${message}`)
    this.name = 'BencodeError'
    this.offset = offset
  }
}

// ---------------------------------------------------------------------------------------------
// Encode: one pass to size, one pass to write into a single Buffer (no intermediate chunks).

const C_I = 0x69, C_L = 0x6c, C_D = 0x64, C_E = 0x65, C_COLON = 0x3a, C_MINUS = 0x2d, C_0 = 0x30, C_9 = 0x39

function digits(n: number): number {
  // Decimal length of a non-negative safe integer.
  let d = 1
  while (n >= 10) { n = Math.floor(n / 10); d++ }
  return d
}

function intLength(n: number): number {
  return 2 + (n < 0 ? 1 + digits(-n) : digits(n))
}

function sortedKeys(o: Record<string, unknown>): string[] {
  const keys: string[] = []
  for (const k of Object.keys(o)) if (o[k] !== undefined && o[k] !== null) keys.push(k)
  // BEP 3: keys sorted as raw byte strings. Plain `<` on JS strings compares UTF-16 units, which
  // differs from byte order only for astral vs high-BMP characters: compare bytes to be exact.
  return keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
}

function size(v: unknown, depth: number): number {
  if (depth > 64) throw new BencodeError('nesting deeper than 64', -1)
  if (typeof v === 'string') { const n = Buffer.byteLength(v); return digits(n) + 1 + n }
  if (Buffer.isBuffer(v)) return digits(v.length) + 1 + v.length
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new BencodeError(`cannot encode non-integer number ${v}`, -1)
    return intLength(v)
  }
  if (typeof v === 'boolean') return 3 // i0e / i1e
  if (Array.isArray(v)) {
    let n = 2
    for (const x of v) n += size(x, depth + 1)
    return n
  }
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>
    let n = 2
    for (const k of sortedKeys(o)) n += size(k, depth + 1) + size(o[k], depth + 1)
    return n
  }
  throw new BencodeError(`cannot encode ${v === null ? 'null' : typeof v}`, -1)
}

function writeInt(buf: Buffer, pos: number, n: number): number {
  return pos + buf.write(String(n), pos, 'latin1')
}

function write(buf: Buffer, pos: number, v: unknown): number {
  if (typeof v === 'string') {
    const n = Buffer.byteLength(v)
    pos = writeInt(buf, pos, n)
    buf[pos++] = C_COLON
    return pos + buf.write(v, pos, 'utf8')
  }
  if (Buffer.isBuffer(v)) {
    pos = writeInt(buf, pos, v.length)
    buf[pos++] = C_COLON
    return pos + v.copy(buf, pos)
  }
  if (typeof v === 'number' || typeof v === 'boolean') {
    buf[pos++] = C_I
    pos = writeInt(buf, pos, typeof v === 'boolean' ? (v ? 1 : 0) : v)
    buf[pos++] = C_E
    return pos
  }
  if (Array.isArray(v)) {
    buf[pos++] = C_L
    for (const x of v) pos = write(buf, pos, x)
    buf[pos++] = C_E
    return pos
  }
  const o = v as Record<string, unknown>
  buf[pos++] = C_D
  for (const k of sortedKeys(o)) {
    pos = write(buf, pos, k)
    pos = write(buf, pos, o[k])
  }
  buf[pos++] = C_E
  return pos
}

/** Encodes `v`; `prefix` (e.g. the NG cookie and its space) is written in front in the same Buffer. */
export function encode(v: BInput, prefix?: string): Buffer {
  const pre = prefix === undefined ? 0 : Buffer.byteLength(prefix)
  const n = size(v, 0)
  const buf = Buffer.allocUnsafe(pre + n)
  if (prefix !== undefined) buf.write(prefix, 0, 'utf8')
  const end = write(buf, pre, v)
  if (end !== pre + n) throw new BencodeError(`internal size mismatch (${end} != ${pre + n})`, -1)
  return buf
}

// ---------------------------------------------------------------------------------------------
// Decode: recursive descent with an explicit depth bound; string lengths are checked against the
// bytes actually present before anything is sliced, so a hostile length allocates nothing.

export interface DecodeOptions {
  /** How byte strings come back: 'latin1' strings (default), 'utf8' strings, or Buffer views. */
  strings?: 'latin1' | 'utf8' | 'buffer'
  /** Maximum nesting of lists/dicts (default 32). */
  maxDepth?: number
  /** Start offset in the buffer (default 0). The value must end exactly at the buffer's end. */
  offset?: number
}

class Decoder {
  pos: number
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly mode: 'latin1' | 'utf8' | 'buffer',
    readonly maxDepth: number,
  ) {
    this.pos = start
  }

  fail(msg: string): never {
    throw new BencodeError(msg, this.pos)
  }

  value(depth: number): BValue {
    const c = this.buf[this.pos]
    if (c === undefined) this.fail('unexpected end of input')
    if (c === C_I) return this.int()
    if (c >= C_0 && c <= C_9) return this.str(this.mode)
    if (c === C_L || c === C_D) {
      if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`)
      return c === C_L ? this.list(depth + 1) : this.dict(depth + 1)
    }
    return this.fail(`unexpected byte 0x${c.toString(16).padStart(2, '0')}`)
  }

  int(): number {
    const buf = this.buf
    let p = this.pos + 1
    const neg = buf[p] === C_MINUS
    if (neg) p++
    const first = p
    let n = 0
    for (;;) {
      const c = buf[p]
      if (c === undefined) this.fail('unterminated integer')
      if (c === C_E) break
      if (c < C_0 || c > C_9) { this.pos = p; this.fail('bad digit in integer') }
      n = n * 10 + (c - C_0)
      p++
      if (p - first > 16) { this.pos = p; this.fail('integer too long') }
    }
    if (p === first) this.fail('empty integer')
    if (buf[first] === C_0 && (p - first > 1 || neg)) this.fail('integer with leading zero or -0')
    if (!Number.isSafeInteger(n)) this.fail('integer beyond 2^53')
    this.pos = p + 1
    return neg ? -n : n
  }

  /** Reads `<len>:<bytes>` and returns the bytes in the given form. */
  str(mode: 'latin1' | 'utf8' | 'buffer'): string | Buffer {
    const buf = this.buf
    let p = this.pos
    let len = 0
    const first = p
    for (;;) {
      const c = buf[p]
      if (c === undefined) this.fail('unterminated string length')
      if (c === C_COLON) break
      if (c < C_0 || c > C_9) { this.pos = p; this.fail('bad digit in string length') }
      len = len * 10 + (c - C_0)
      p++
      if (p - first > 10) this.fail('string length too long')
    }
    if (p === first) this.fail('empty string length')
    if (buf[first] === C_0 && p - first > 1) this.fail('string length with leading zero')
    const start = p + 1
    // Checked before slicing: a claimed length past the end allocates nothing.
    if (len > buf.length - start) this.fail(`string of ${len} bytes runs past the end`)
    this.pos = start + len
    if (mode === 'buffer') return buf.subarray(start, start + len)
    return buf.toString(mode, start, start + len)
  }

  list(depth: number): BValue[] {
    this.pos++
    const out: BValue[] = []
    for (;;) {
      const c = this.buf[this.pos]
      if (c === undefined) this.fail('unterminated list')
      if (c === C_E) { this.pos++; return out }
      out.push(this.value(depth))
    }
  }

  dict(depth: number): BDict {
    this.pos++
    // No prototype: a '__proto__' key from the wire is plain data, never a prototype change.
    const out = Object.create(null) as BDict
    for (;;) {
      const c = this.buf[this.pos]
      if (c === undefined) this.fail('unterminated dict')
      if (c === C_E) { this.pos++; return out }
      if (c < C_0 || c > C_9) this.fail('dict key is not a string')
      const at = this.pos
      // Keys are always strings; rtpengine does not sort them, so order is not enforced.
      const key = this.str(this.mode === 'utf8' ? 'utf8' : 'latin1') as string
      if (key in out) { this.pos = at; this.fail(`duplicate dict key '${key}'`) }
      out[key] = this.value(depth)
    }
  }
}

/** Decodes exactly one value spanning `buf` from `offset` to its end; throws BencodeError otherwise. */
export function decode(buf: Buffer, opts: DecodeOptions = {}): BValue {
  const d = new Decoder(buf, opts.offset ?? 0, opts.strings ?? 'latin1', opts.maxDepth ?? 32)
  const v = d.value(0)
  if (d.pos !== buf.length) d.fail(`${buf.length - d.pos} trailing bytes`)
  return v
}

/** True for a decoded dict (not a list, string, Buffer or number). */
export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v)
}
