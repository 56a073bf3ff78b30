import { frameStream, skipKeepAlives, SipParseError } from '../sip/index.js'

/** Receives what a StreamFramer cuts out of a byte stream. Implemented by TcpConnection (no closures). */
export interface FrameSink {
  /** One complete message in buf[start, end). The bytes are never overwritten afterwards. */
  onFrame(buf: Buffer, start: number, end: number): void
  /** The stream cannot be framed any more (oversized or broken Content-Length); the framer stops. */
  onFrameError(err: Error, buf: Buffer): void
  /** A CRLFCRLF keep-alive ping (RFC 5626 §4.4.1) was seen between messages. */
  onPing(): void
}

/**
 * Cuts SIP messages out of a TCP byte stream.
 *
 * Whole messages inside one chunk are handed out as ranges of that chunk (no copy). Only a message that
 * spans chunks is assembled, into a buffer that grows geometrically, so a message arriving one byte per
 * read costs O(n) copying. Until a header terminator has arrived only the new bytes are scanned for it,
 * so frameStream is not re-run over a growing header section on every read.
 */
export class StreamFramer {
  private pend: Buffer | null = null
  private pendLen = 0
  private headerComplete = false
  private closed = false

  constructor(
    private readonly sink: FrameSink,
    private readonly maxMessageSize: number,
  ) {}

  /** Bytes held while waiting for the rest of a message. */
  get buffered(): number {
    return this.pendLen
  }

  close(): void {
    this.closed = true
    this.pend = null
    this.pendLen = 0
  }

  push(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return
    if (this.pend === null) {
      this.scan(chunk, 0, chunk.length)
      return
    }
    const scanFrom = this.pendLen > 3 ? this.pendLen - 3 : 0
    this.append(chunk)
    const pend = this.pend
    if (!this.headerComplete) {
      if (!hasHeaderEnd(pend, scanFrom, this.pendLen)) {
        if (this.pendLen > this.maxMessageSize) {
          this.fail(new SipParseError(`header section exceeds ${this.maxMessageSize} bytes`, 413), pend, this.pendLen)
        }
        return
      }
      this.headerComplete = true
    }
    let end: number
    try {
      end = frameStream(pend, 0, this.pendLen, this.maxMessageSize)
    } catch (err) {
      this.fail(err as Error, pend, this.pendLen)
      return
    }
    if (end < 0) {
      if (this.pendLen > this.maxMessageSize) {
        this.fail(new SipParseError(`message exceeds ${this.maxMessageSize} bytes`, 413), pend, this.pendLen)
      }
      return
    }
    // Hand the assembled buffer over for good: frames may be kept (transactions), so it is never reused.
    const len = this.pendLen
    this.pend = null
    this.pendLen = 0
    this.headerComplete = false
    this.sink.onFrame(pend, 0, end)
    if (end < len) this.scan(pend, end, len)
  }

  private scan(buf: Buffer, pos: number, end: number): void {
    while (!this.closed) {
      const start = skipKeepAlives(buf, pos, end)
      if (start - pos >= 4) this.sink.onPing()
      if (start >= end) return
      let frameEnd: number
      try {
        frameEnd = frameStream(buf, start, end, this.maxMessageSize)
      } catch (err) {
        this.fail(err as Error, buf.subarray(start, end), end - start)
        return
      }
      if (frameEnd < 0) {
        this.stash(buf, start, end)
        return
      }
      this.sink.onFrame(buf, start, frameEnd)
      pos = frameEnd
    }
  }

  private stash(buf: Buffer, start: number, end: number): void {
    const len = end - start
    const pend = Buffer.allocUnsafe(len * 2 > 4096 ? len * 2 : 4096)
    buf.copy(pend, 0, start, end)
    this.pend = pend
    this.pendLen = len
    this.headerComplete = hasHeaderEnd(pend, 0, len)
  }

  private append(chunk: Buffer): void {
    const need = this.pendLen + chunk.length
    let pend = this.pend as Buffer
    if (need > pend.length) {
      const grown = Buffer.allocUnsafe(need > pend.length * 2 ? need : pend.length * 2)
      pend.copy(grown, 0, 0, this.pendLen)
      pend = grown
      this.pend = grown
    }
    chunk.copy(pend, this.pendLen)
    this.pendLen = need
  }

  private fail(err: Error, buf: Buffer, len: number): void {
    this.close()
    this.sink.onFrameError(err, buf.length === len ? buf : buf.subarray(0, len))
  }
}

/** An empty line (LF followed by LF or CRLF) somewhere in buf[from, to): the header section may be complete. */
function hasHeaderEnd(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to - 1; i++) {
    if (buf[i] !== 10) continue
    const next = buf[i + 1]
    if (next === 10 || (next === 13 && i + 2 < to && buf[i + 2] === 10)) return true
  }
  return false
}
