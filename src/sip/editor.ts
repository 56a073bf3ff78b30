/**
 * MessageEditor: edits are recorded as (start, end, text) patches over the original bytes and
 * applied once in toBuffer(), which splices untouched ranges and new text into one Buffer.
 */
import type { SipMessage } from './message.js'
import { SipParseError } from './errors.js'
import { H, resolveHeaderId, canonicalHeaderName } from './headers.js'
import { SP, HT, CR, LF, COMMA, COLON, writeUtf8 } from './bytes.js'

function isWs(c: number | undefined): boolean {
  return c === SP || c === HT || c === CR || c === LF
}

function checkHeaderText(name: string, value: string): void {
  // A CR/LF in an inserted value would let a caller smuggle headers; refuse it.
  if (value.indexOf('\n') >= 0 || value.indexOf('\r') >= 0) throw new SipParseError(`line break in value of ${name}`, 400)
}

export class MessageEditor {
  private readonly msg: SipMessage
  // Patches in one flat array, SLOTS entries each: replaced range [start, end), then either a
  // header line (name, value: written as "name: value\r\n" without building that string) or raw
  // text (name '' and the text). One array instead of one per field: each array's first push
  // allocates a 16-slot backing store, and the forward step is allocation-bound (bench/parser.mjs).
  // Insertion order breaks ties so two inserts at one position come out in call order.
  private readonly patches: (number | string)[] = []

  constructor(msg: SipMessage) {
    this.msg = msg
  }

  /** A new editor holding the same edits so far (a proxy builds one forwarded copy per branch). */
  clone(): MessageEditor {
    const copy = new MessageEditor(this.msg)
    const p = this.patches
    for (let k = 0; k < p.length; k++) copy.patches.push(p[k]!)
    return copy
  }

  replaceRange(start: number, end: number, text: string): this {
    return this.addPatch(start, end, '', text)
  }

  private addPatch(start: number, end: number, name: string, text: string): this {
    const m = this.msg
    if (!(start >= m.start && end <= m.end && start <= end)) throw new RangeError('edit range outside the message')
    this.patches.push(start, end, name, text)
    return this
  }

  prependHeader(name: string, value: string): this {
    checkHeaderText(name, value)
    const m = this.msg
    const i = m.indexOf(name)
    const at = i >= 0 ? m.headerLineStart(i) : m.headersStart
    return this.addPatch(at, at, name, value)
  }

  appendHeader(name: string, value: string): this {
    checkHeaderText(name, value)
    const at = this.msg.headersEnd
    return this.addPatch(at, at, name, value)
  }

  removeTopVia(): this {
    return this.removeElement(this.msg.via)
  }

  removeElement(el: { start: number; end: number }): this {
    const m = this.msg
    const buf = m.buf
    let line = -1
    for (let i = 0; i < m.headerCount; i++) {
      if (el.start >= m.headerValueStart(i) && el.end <= m.headerValueEnd(i)) { line = i; break }
    }
    if (line < 0) throw new RangeError('element is not inside a header value')
    const vs = m.headerValueStart(line), ve = m.headerValueEnd(line)
    let before = el.start
    while (before > vs && isWs(buf[before - 1])) before--
    if (before > vs && buf[before - 1] === COMMA) {
      // not the first element: drop ", element"
      return this.replaceRange(before - 1, el.end, '')
    }
    let after = el.end
    while (after < ve && isWs(buf[after])) after++
    if (after < ve && buf[after] === COMMA) {
      after++
      while (after < ve && isWs(buf[after])) after++
      return this.replaceRange(el.start, after, '')
    }
    return this.replaceRange(m.headerLineStart(line), m.headerLineEnd(line), '')
  }

  removeHeaders(nameOrId: string | number): this {
    const m = this.msg
    for (let i = m.indexOf(nameOrId); i >= 0; i = m.indexOf(nameOrId, i + 1)) {
      this.replaceRange(m.headerLineStart(i), m.headerLineEnd(i), '')
    }
    return this
  }

  setHeader(nameOrId: string | number, value: string): this {
    const m = this.msg
    const id = resolveHeaderId(nameOrId)
    const name = typeof nameOrId === 'string' ? nameOrId : canonicalHeaderName(id)
    if (name === '') throw new RangeError('setHeader needs a header name for unknown ids')
    checkHeaderText(name, value)
    const first = m.indexOf(nameOrId)
    if (first < 0) return this.appendHeader(name, value)
    // Keep the original name spelling position; replace the first line, drop the rest.
    this.addPatch(m.headerLineStart(first), m.headerLineEnd(first), name, value)
    for (let i = m.indexOf(nameOrId, first + 1); i >= 0; i = m.indexOf(nameOrId, i + 1)) {
      this.replaceRange(m.headerLineStart(i), m.headerLineEnd(i), '')
    }
    return this
  }

  setRequestUri(uri: string): this {
    const m = this.msg
    if (!m.isRequest) throw new RangeError('a response has no Request-URI')
    for (let i = 0; i < uri.length; i++) {
      if (uri.charCodeAt(i) <= 0x20) throw new SipParseError('whitespace in Request-URI', 400)
    }
    return this.replaceRange(m.startLinePartStart, m.startLinePartEnd, uri)
  }

  setMaxForwards(n: number): this {
    if (!Number.isInteger(n) || n < 0 || n > 255) throw new RangeError('Max-Forwards must be 0..255')
    const m = this.msg
    const i = m.indexOf(H.MaxForwards)
    if (i < 0) return this.prependHeader('Max-Forwards', String(n))
    return this.replaceRange(m.headerValueStart(i), m.headerValueEnd(i), String(n))
  }

  toBuffer(): Buffer {
    const m = this.msg
    const src = m.buf
    const p = this.patches
    const count = p.length / SLOTS
    // Patch order by start; call order breaks ties. Few patches, usually almost sorted: an
    // insertion sort into a reused array beats Array#sort with a comparator closure.
    const order = ORDER, ps = PS, pe = PE, pl = PL
    for (let k = 0; k < count; k++) {
      const sk = p[k * SLOTS] as number
      let j = k
      while (j > 0 && (p[order[j - 1]! * SLOTS] as number) > sk) { order[j] = order[j - 1]!; j-- }
      order[j] = k
    }
    // Clamped ranges (an overlapped patch starts where the previous one ended), text sizes, and
    // whether the output is never shorter than the input up to any kept range (`grows`).
    let size = 0
    let cursor = m.start
    let grows = true
    for (let o = 0; o < count; o++) {
      const b = order[o]! * SLOTS
      const start = p[b] as number, end = p[b + 1] as number
      const s = start > cursor ? start : cursor
      const e = end > s ? end : s
      size += s - cursor
      if (size < s - m.start) grows = false
      const name = p[b + 2] as string
      const len = Buffer.byteLength(p[b + 3] as string, 'utf8') + (name === '' ? 0 : Buffer.byteLength(name, 'utf8') + 4)
      ps[o] = s; pe[o] = e; pl[o] = len
      size += len
      cursor = e
    }
    if (size < cursor - m.start) grows = false
    size += m.end - cursor
    const out = Buffer.allocUnsafe(size)
    if (grows && count > 0) {
      // One native copy of the whole message, then kept ranges move right in place (copyWithin is
      // a memmove with no Buffer view per range), last first so none is overwritten before it moves.
      const base = m.start
      src.copy(out, 0, base, m.end)
      let w = size
      let rangeEnd = m.end
      for (let o = count - 1; o >= -1; o--) {
        const rangeStart = o >= 0 ? pe[o]! : base
        const len = rangeEnd - rangeStart
        w -= len
        if (len > 0 && w !== rangeStart - base) out.copyWithin(w, rangeStart - base, rangeEnd - base)
        if (o < 0) break
        w -= pl[o]!
        if (pl[o]! > 0) writePatch(out, p, order[o]! * SLOTS, w)
        rangeEnd = ps[o]!
      }
      return out
    }
    let w = 0
    cursor = m.start
    for (let o = 0; o < count; o++) {
      const s = ps[o]!, e = pe[o]!
      if (s > cursor) w += src.copy(out, w, cursor, s)
      if (pl[o]! > 0) w += writePatch(out, p, order[o]! * SLOTS, w)
      cursor = e
    }
    if (m.end > cursor) src.copy(out, w, cursor, m.end)
    return out
  }
}

/** Entries per patch in MessageEditor.patches: start, end, header name ('' for raw text), text. */
const SLOTS = 4

/** Writes patch b's bytes at w: the raw text, or "name: value\r\n"; returns the byte count. */
function writePatch(out: Buffer, p: (number | string)[], b: number, w: number): number {
  const name = p[b + 2] as string
  const text = p[b + 3] as string
  if (name === '') return writeUtf8(out, text, w)
  let at = w + writeUtf8(out, name, w)
  out[at++] = COLON
  out[at++] = SP
  at += writeUtf8(out, text, at)
  out[at++] = CR
  out[at++] = LF
  return at - w
}

// Per-call scratch for toBuffer (single-threaded, not re-entrant): patch order and clamped ranges.
const ORDER: number[] = []
const PS: number[] = []
const PE: number[] = []
const PL: number[] = []
