/**
 * A parsed SIP message: the original bytes plus an index of header offsets. Nothing is decoded
 * until an accessor asks; decoded values are cached on the instance.
 */
import { SipParseError } from './errors.js'
import { H, resolveHeaderId, canonicalHeaderName } from './headers.js'
import { latin1, utf8, unfold, parseUint, matchLower, trimLwsEnd, skipLws } from './bytes.js'
import { parseUri, type SipUri } from './parse_uri.js'
import { parseSingleAddress, parseAddressList, type NameAddr } from './parse_address.js'
import { parseViaAt, parseViaList, type Via } from './parse_via.js'
import { parseCSeq, type CSeq } from './parse_cseq.js'
import { findParam, findTrailingParam, paramEnd } from './parse_params.js'
import { MessageEditor } from './editor.js'

/**
 * Fields per header in the index: id + name length * 64, name (= line) start, value start, value end.
 * A line ends where the next one starts (or at the empty line), so that needs no field.
 */
export const STRIDE = 4
export const ID_BITS = 64
/** Ids below this (Via .. Content-Type) have their first line index stored after the header fields. */
export const FIRST_TRACKED = 12
export const MAX_VIAS = 64
export const MAX_ADDRESSES = 64

export class SipMessage {
  readonly buf: Buffer
  readonly start: number
  readonly end: number
  readonly isRequest: boolean
  readonly method: string
  readonly status: number
  readonly headerCount: number
  /** Start-line pieces: R-URI range for requests, reason-phrase range for responses. */
  readonly startLinePartStart: number
  readonly startLinePartEnd: number
  /** Index of the first header line (just past the start line's LF). */
  readonly headersStart: number
  /** Index of the empty line that ends the header section. */
  readonly headersEnd: number
  readonly bodyStart: number
  /** Content-Length value, -1 when absent. */
  readonly contentLengthValue: number
  /** The SIP-Version text was "SIP/2.0" (others are rejected by validate with 505). */
  readonly versionOk: boolean
  /** STRIDE fields per header line, then for ids < FIRST_TRACKED the first line with that id (-1: none). */
  private readonly idx: number[]

  private cCallId: string | undefined
  private cCSeq: CSeq | undefined
  private cFrom: NameAddr | undefined
  private cTo: NameAddr | undefined
  private cVias: Via[] | undefined
  private cTopVia: Via | undefined
  private cRoutes: NameAddr[] | undefined
  private cRecordRoutes: NameAddr[] | undefined
  private cContacts: NameAddr[] | undefined
  private cUri: SipUri | undefined

  constructor(buf: Buffer, start: number, end: number, isRequest: boolean, method: string, status: number,
    partStart: number, partEnd: number, versionOk: boolean, headersStart: number, headersEnd: number,
    bodyStart: number, contentLength: number, idx: number[], headerCount: number) {
    this.buf = buf
    this.start = start
    this.end = end
    this.isRequest = isRequest
    this.method = method
    this.status = status
    this.startLinePartStart = partStart
    this.startLinePartEnd = partEnd
    this.versionOk = versionOk
    this.headersStart = headersStart
    this.headersEnd = headersEnd
    this.bodyStart = bodyStart
    this.contentLengthValue = contentLength
    this.idx = idx
    this.headerCount = headerCount
    this.cCallId = undefined
    this.cCSeq = undefined
    this.cFrom = undefined
    this.cTo = undefined
    this.cVias = undefined
    this.cTopVia = undefined
    this.cRoutes = undefined
    this.cRecordRoutes = undefined
    this.cContacts = undefined
    this.cUri = undefined
  }

  get reason(): string {
    return this.isRequest ? '' : utf8(this.buf, this.startLinePartStart, this.startLinePartEnd)
  }
  get requestUri(): string {
    return this.isRequest ? latin1(this.buf, this.startLinePartStart, this.startLinePartEnd) : ''
  }
  get uri(): SipUri {
    if (!this.isRequest) throw new SipParseError('a response has no Request-URI', 400)
    return (this.cUri ??= parseUri(utf8(this.buf, this.startLinePartStart, this.startLinePartEnd)))
  }

  headerId(i: number): number { return this.idx[i * STRIDE]! & 63 }
  /** The name as written (compact or long form). */
  headerName(i: number): string {
    const s = this.idx[i * STRIDE + 1]!
    return latin1(this.buf, s, s + Math.floor(this.idx[i * STRIDE]! / ID_BITS))
  }
  headerValue(i: number): string { return unfold(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!) }
  headerValueStart(i: number): number { return this.idx[i * STRIDE + 2]! }
  headerValueEnd(i: number): number { return this.idx[i * STRIDE + 3]! }
  headerLineStart(i: number): number { return this.idx[i * STRIDE + 1]! }
  headerLineEnd(i: number): number { return i + 1 < this.headerCount ? this.idx[(i + 1) * STRIDE + 1]! : this.headersEnd }

  /** Index of the first header matching `nameOrId` at or after `from`, -1 when none. */
  indexOf(nameOrId: string | number, from = 0): number {
    const id = typeof nameOrId === 'number' ? nameOrId : resolveHeaderId(nameOrId)
    if (from === 0 && id > 0 && id < FIRST_TRACKED) return this.idx[this.headerCount * STRIDE + id]!
    const idx = this.idx
    if (id !== H.Other) {
      for (let i = from; i < this.headerCount; i++) if ((idx[i * STRIDE]! & 63) === id) return i
      return -1
    }
    if (typeof nameOrId !== 'string') return -1
    const lower = nameOrId.toLowerCase()
    for (let i = from; i < this.headerCount; i++) {
      const w = idx[i * STRIDE]!
      const ns = idx[i * STRIDE + 1]!
      if ((w & 63) === H.Other && matchLower(this.buf, ns, ns + Math.floor(w / ID_BITS), lower)) return i
    }
    return -1
  }

  getHeader(nameOrId: string | number): string | undefined {
    const i = this.indexOf(nameOrId)
    return i < 0 ? undefined : this.headerValue(i)
  }
  getHeaders(nameOrId: string | number): string[] {
    const out: string[] = []
    for (let i = this.indexOf(nameOrId); i >= 0; i = this.indexOf(nameOrId, i + 1)) out.push(this.headerValue(i))
    return out
  }
  has(id: number): boolean {
    if (id > 0 && id < FIRST_TRACKED) return this.idx[this.headerCount * STRIDE + id]! >= 0
    const idx = this.idx
    for (let i = 0; i < this.headerCount; i++) if ((idx[i * STRIDE]! & 63) === id) return true
    return false
  }
  /** Number of header lines with this id. */
  count(id: number): number {
    let n = 0
    const idx = this.idx
    for (let i = 0; i < this.headerCount; i++) if ((idx[i * STRIDE]! & 63) === id) n++
    return n
  }

  /** Index of the first line with a tracked id (< FIRST_TRACKED), -1 when absent. */
  private firstLine(id: number): number { return this.idx[this.headerCount * STRIDE + id]! }

  private required(id: number): number {
    const i = id < FIRST_TRACKED ? this.firstLine(id) : this.indexOf(id)
    if (i < 0) throw new SipParseError(`missing ${canonicalHeaderName(id)} header`, 400)
    return i
  }

  get callId(): string {
    if (this.cCallId !== undefined) return this.cCallId
    const i = this.required(H.CallId)
    const buf = this.buf
    const s = this.idx[i * STRIDE + 2]!, e = this.idx[i * STRIDE + 3]!
    if (e === s) throw new SipParseError('empty Call-ID', 400)
    // Branch-free check that every byte is in 0x21..0x7e: a byte outside makes one term negative.
    let bad = 0
    for (let k = s; k < e; k++) {
      const c = buf[k]!
      bad |= (c - 0x21) | (0x7e - c)
    }
    if (bad < 0) throw new SipParseError('bad character in Call-ID', 400)
    return (this.cCallId = latin1(buf, s, e))
  }
  get cseq(): CSeq {
    if (this.cCSeq !== undefined) return this.cCSeq
    const i = this.required(H.CSeq)
    return (this.cCSeq = parseCSeq(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!))
  }
  get from(): NameAddr {
    if (this.cFrom !== undefined) return this.cFrom
    const i = this.required(H.From)
    return (this.cFrom = parseSingleAddress(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!))
  }
  get to(): NameAddr {
    if (this.cTo !== undefined) return this.cTo
    const i = this.required(H.To)
    return (this.cTo = parseSingleAddress(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!))
  }
  /** Top Via element only (cheaper than `vias` when the rest is not needed). */
  get via(): Via {
    if (this.cVias !== undefined && this.cVias.length > 0) return this.cVias[0]!
    if (this.cTopVia !== undefined) return this.cTopVia
    const i = this.required(H.Via)
    return (this.cTopVia = parseViaAt(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!, i))
  }
  get vias(): Via[] {
    if (this.cVias !== undefined) return this.cVias
    const out: Via[] = []
    const idx = this.idx
    for (let i = 0; i < this.headerCount; i++) {
      if ((idx[i * STRIDE]! & 63) === H.Via) parseViaList(this.buf, idx[i * STRIDE + 2]!, idx[i * STRIDE + 3]!, i, out, MAX_VIAS)
    }
    return (this.cVias = out)
  }
  get maxForwards(): number | undefined {
    const i = this.indexOf(H.MaxForwards)
    if (i < 0) return undefined
    const n = parseUint(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!, 255)
    if (n < 0) throw new SipParseError('bad Max-Forwards', 400)
    return n
  }
  private addressList(id: number): NameAddr[] {
    const out: NameAddr[] = []
    const idx = this.idx
    for (let i = 0; i < this.headerCount; i++) {
      if ((idx[i * STRIDE]! & 63) === id) parseAddressList(this.buf, idx[i * STRIDE + 2]!, idx[i * STRIDE + 3]!, out, MAX_ADDRESSES)
    }
    return out
  }
  get routes(): NameAddr[] { return (this.cRoutes ??= this.addressList(H.Route)) }
  get recordRoutes(): NameAddr[] { return (this.cRecordRoutes ??= this.addressList(H.RecordRoute)) }
  get contacts(): NameAddr[] {
    if (this.cContacts !== undefined) return this.cContacts
    return (this.cContacts = this.contactStar ? [] : this.addressList(H.Contact))
  }
  /** `Contact: *` (REGISTER removing all bindings). */
  get contactStar(): boolean {
    const i = this.indexOf(H.Contact)
    if (i < 0) return false
    const s = skipLws(this.buf, this.idx[i * STRIDE + 2]!, this.idx[i * STRIDE + 3]!)
    const e = trimLwsEnd(this.buf, s, this.idx[i * STRIDE + 3]!)
    return e - s === 1 && this.buf[s] === 0x2a
  }
  get contentLength(): number | undefined {
    return this.contentLengthValue < 0 ? undefined : this.contentLengthValue
  }
  get contentType(): string | undefined { return this.getHeader(H.ContentType) }
  get body(): Buffer { return this.buf.subarray(this.bodyStart, this.end) }

  // Cheap paths for the hot path: no objects, one string each.
  private firstParam(id: number, lowerName: string, trailing: boolean): string | undefined {
    const i = this.firstLine(id)
    if (i < 0) return undefined
    const buf = this.buf
    const s = this.idx[i * STRIDE + 2]!, e = this.idx[i * STRIDE + 3]!
    let vs = trailing ? findTrailingParam(buf, s, e, lowerName) : -1
    if (vs < 0) vs = findParam(buf, s, e, lowerName)
    return vs < 0 ? undefined : latin1(buf, vs, paramEnd.value)
  }
  /** branch parameter of the top Via element. */
  get topViaBranch(): string | undefined { return this.firstParam(H.Via, 'branch', false) }
  /** tag of From / To without building a NameAddr (no validation of the rest of the value). */
  get fromTag(): string | undefined { return this.firstParam(H.From, 'tag', true) }
  get toTag(): string | undefined { return this.firstParam(H.To, 'tag', true) }

  edit(): MessageEditor { return new MessageEditor(this) }
}
