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
// Encode: one pass into a scratch Buffer kept between calls (grown and retried when a value does not
// fit), then one copy out of exactly the right size. Every NG command is encoded here, so nothing per
// key is allocated: keys sort as JS strings, byte order for them (see sortedKeys).

const C_I = 0x69, C_L = 0x6c, C_D = 0x64, C_E = 0x65, C_COLON = 0x3a, C_MINUS = 0x2d, C_0 = 0x30, C_9 = 0x39

let scratch = Buffer.allocUnsafe(16 * 1024)
/** Thrown by the writers when the scratch Buffer is too small; encode() grows it and starts again. */
const FULL = Symbol('bencode scratch full')

function sortedKeys(o: Record<string, unknown>): string[] {
  const keys: string[] = []
  let bmpBelowSurrogates = true
  for (const k of Object.keys(o)) {
    if (o[k] === undefined || o[k] === null) continue
    keys.push(k)
    for (let i = 0; i < k.length && bmpBelowSurrogates; i++) if (k.charCodeAt(i) >= 0xd800) bmpBelowSurrogates = false
  }
  // BEP 3: keys sorted as raw byte strings. UTF-16 unit order is UTF-8 byte order unless a surrogate pair
  // meets a character at or above U+E000 (NG keys are ASCII): only then compare the bytes.
  return bmpBelowSurrogates ? keys.sort() : keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
}

/** Writes the decimal digits of a safe integer. */
function writeInt(buf: Buffer, pos: number, n: number): number {
  if (n < 0) { buf[pos++] = C_MINUS; n = -n }
  let d = 1
  for (let x = n; x >= 10; x = Math.floor(x / 10)) d++
  if (pos + d > buf.length) throw FULL
  for (let i = pos + d - 1; i >= pos; i--) { buf[i] = C_0 + (n % 10); n = Math.floor(n / 10) }
  return pos + d
}

function write(buf: Buffer, pos: number, v: unknown, depth: number): number {
  // Room for the small fixed parts (type byte, 'e', ':', a sign); lengths are checked where they vary.
  if (pos + 4 > buf.length) throw FULL
  if (typeof v === 'string') {
    const n = Buffer.byteLength(v)
    pos = writeInt(buf, pos, n)
    if (pos + 1 + n > buf.length) throw FULL
    buf[pos++] = C_COLON
    return pos + buf.write(v, pos, 'utf8')
  }
  if (Buffer.isBuffer(v)) {
    pos = writeInt(buf, pos, v.length)
    if (pos + 1 + v.length > buf.length) throw FULL
    buf[pos++] = C_COLON
    return pos + v.copy(buf, pos)
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new BencodeError(`cannot encode non-integer number ${v}`, -1)
    buf[pos++] = C_I
    pos = writeInt(buf, pos, v)
    if (pos + 1 > buf.length) throw FULL
    buf[pos++] = C_E
    return pos
  }
  if (typeof v === 'boolean') {
    buf[pos++] = C_I
    buf[pos++] = v ? C_0 + 1 : C_0
    buf[pos++] = C_E
    return pos
  }
  if (typeof v !== 'object' || v === null) throw new BencodeError(`cannot encode ${v === null ? 'null' : typeof v}`, -1)
  if (depth > 64) throw new BencodeError('nesting deeper than 64', -1)
  if (Array.isArray(v)) {
    buf[pos++] = C_L
    for (const x of v) pos = write(buf, pos, x, depth + 1)
    if (pos + 1 > buf.length) throw FULL
    buf[pos++] = C_E
    return pos
  }
  const o = v as Record<string, unknown>
  buf[pos++] = C_D
  for (const k of sortedKeys(o)) {
    pos = write(buf, pos, k, depth + 1)
    pos = write(buf, pos, o[k], depth + 1)
  }
  if (pos + 1 > buf.length) throw FULL
  buf[pos++] = C_E
  return pos
}

/** Encodes `v`; `prefix` (e.g. the NG cookie and its space) is written in front in the same Buffer. */
export function encode(v: BInput, prefix?: string): Buffer {
  for (;;) {
    try {
      const pre = prefix === undefined ? 0 : Buffer.byteLength(prefix)
      if (pre > scratch.length) throw FULL
      if (prefix !== undefined) scratch.write(prefix, 0, 'utf8')
      const end = write(scratch, pre, v, 0)
      const out = Buffer.allocUnsafe(end)
      scratch.copy(out, 0, 0, end)
      // A huge value grew the scratch: do not keep megabytes for the rest of the process.
      if (scratch.length > 256 * 1024) scratch = Buffer.allocUnsafe(16 * 1024)
      return out
    } catch (err) {
      if (err !== FULL) throw err
      scratch = Buffer.allocUnsafe(scratch.length * 2)
    }
  }
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
  /**
   * Top-level dict only: its list and dict values are checked (same bounds) but not built, and left out.
   * For NG replies whose statistics nobody reads (a `delete` reply carries a dict per stream).
   */
  shallow?: boolean
}

class Decoder {
  pos: number
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly mode: 'latin1' | 'utf8' | 'buffer',
    readonly maxDepth: number,
    /** Depth of the dict whose nested values are skipped (1: the top level), or -1. */
    readonly shallowAt: number,
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
    const start = this.strStart()
    if (mode === 'buffer') return this.buf.subarray(start, this.pos)
    return this.buf.toString(mode, start, this.pos)
  }

  /** Checks `<len>:` and that the bytes are there, moves past them, and returns where they start. */
  strStart(): number {
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
    return start
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
      const v = this.buf[this.pos]
      if (this.shallowAt === depth && (v === C_L || v === C_D)) {
        this.skip(depth)
        continue
      }
      out[key] = this.value(depth)
    }
  }

  /** Walks one value with the same checks as value() and builds nothing. */
  skip(depth: number): void {
    const c = this.buf[this.pos]
    if (c === undefined) this.fail('unexpected end of input')
    if (c === C_I) { this.int(); return }
    if (c >= C_0 && c <= C_9) { this.strStart(); return }
    if (c !== C_L && c !== C_D) this.fail(`unexpected byte 0x${c.toString(16).padStart(2, '0')}`)
    if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`)
    this.pos++
    for (;;) {
      const n = this.buf[this.pos]
      if (n === undefined) this.fail(c === C_L ? 'unterminated list' : 'unterminated dict')
      if (n === C_E) { this.pos++; return }
      if (c === C_D) {
        if (n < C_0 || n > C_9) this.fail('dict key is not a string')
        this.strStart()
      }
      this.skip(depth + 1)
    }
  }
}

/** Decodes exactly one value spanning `buf` from `offset` to its end; throws BencodeError otherwise. */
export function decode(buf: Buffer, opts: DecodeOptions = {}): BValue {
  const d = new Decoder(buf, opts.offset ?? 0, opts.strings ?? 'latin1', opts.maxDepth ?? 32, opts.shallow === true ? 1 : -1)
  const v = d.value(0)
  if (d.pos !== buf.length) d.fail(`${buf.length - d.pos} trailing bytes`)
  return v
}

/** True for a decoded dict (not a list, string, Buffer or number). */
export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v)
}
