import t from 'tap'
import { StreamFramer, type FrameSink } from '../../src/transport/stream-framer.js'
import { request } from './fixtures/collector.js'

class Sink implements FrameSink {
  frames: Buffer[] = []
  /** The live views, to check that bytes handed out are never overwritten later. */
  views: Array<{ buf: Buffer; start: number; end: number }> = []
  errors: Array<{ err: Error; buf: Buffer }> = []
  pings = 0
  onFrame(buf: Buffer, start: number, end: number): void {
    this.frames.push(Buffer.from(buf.subarray(start, end)))
    this.views.push({ buf, start, end })
  }
  onFrameError(err: Error, buf: Buffer): void {
    this.errors.push({ err, buf })
  }
  onPing(): void {
    this.pings++
  }
}

t.test('whole messages in one chunk are handed out without copying', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 65535)
  const a = request('a')
  const b = request('b', { body: 'v=0\r\n' })
  const chunk = Buffer.concat([a, b])
  framer.push(chunk)
  t.equal(sink.frames.length, 2)
  t.same(sink.frames[0], a)
  t.same(sink.frames[1], b)
  t.equal(sink.views[0]!.buf, chunk, 'frame is a range of the received chunk')
  t.equal(framer.buffered, 0)
})

t.test('a message split into 1-byte chunks, then a second one', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 65535)
  const a = request('split', { body: 'x'.repeat(300) })
  let framedAt = -1
  for (let i = 0; i < a.length && framedAt < 0; i++) {
    framer.push(a.subarray(i, i + 1))
    if (sink.frames.length) framedAt = i
  }
  t.equal(framedAt, a.length - 1, 'framed exactly at the last byte')
  t.equal(sink.frames.length, 1)
  t.same(sink.frames[0], a)
  const b = request('next')
  framer.push(b)
  t.same(sink.frames[1], b)
  // the assembled buffer of the first frame must still hold the first message
  const v = sink.views[0]!
  t.same(v.buf.subarray(v.start, v.end), a, 'assembled frame not overwritten by later data')
})

t.test('frame spanning chunks followed by the start of another', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 65535)
  const a = request('one', { body: 'hello' })
  const b = request('two', { body: 'world' })
  const c = request('three')
  const all = Buffer.concat([a, b, c])
  framer.push(all.subarray(0, 10))
  framer.push(all.subarray(10, a.length + 7))
  t.equal(sink.frames.length, 1)
  framer.push(all.subarray(a.length + 7, a.length + b.length + c.length - 1))
  t.equal(sink.frames.length, 2)
  framer.push(all.subarray(all.length - 1))
  t.same(sink.frames, [a, b, c])
})

t.test('CRLF keep-alives: CRLFCRLF is a ping, single CRLF is not, both skipped', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 65535)
  framer.push(Buffer.from('\r\n\r\n'))
  t.equal(sink.pings, 1)
  framer.push(Buffer.from('\r\n'))
  t.equal(sink.pings, 1)
  const a = request('ka')
  framer.push(Buffer.concat([Buffer.from('\r\n\r\n'), a, Buffer.from('\r\n\r\n')]))
  t.equal(sink.pings, 3)
  t.same(sink.frames, [a])
  t.equal(framer.buffered, 0)
})

t.test('oversized Content-Length is an error and the framer stops', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 1000)
  const big = request('big', { body: 'x'.repeat(2000) })
  framer.push(big.subarray(0, 300))
  framer.push(big.subarray(300))
  t.equal(sink.errors.length, 1)
  t.equal((sink.errors[0]!.err as Error & { status?: number }).status, 413)
  t.equal(sink.frames.length, 0)
  framer.push(request('after'))
  t.equal(sink.frames.length, 0, 'nothing framed after an error')
})

t.test('endless header section is cut at maxMessageSize', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 1000)
  framer.push(Buffer.from('INVITE sip:a@b SIP/2.0\r\n'))
  for (let i = 0; i < 100 && sink.errors.length === 0; i++) framer.push(Buffer.from('X-Filler: yyyyyyyyyyyyyyyyyyyy\r\n'))
  t.equal(sink.errors.length, 1)
  t.ok(framer.buffered === 0)
})

t.test('missing Content-Length on a stream is an error', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 65535)
  framer.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n'))
  t.equal(sink.errors.length, 1)
  t.equal(sink.frames.length, 0)
})

t.test('1-byte writes of a large body stay fast (no quadratic copying)', async (t) => {
  const sink = new Sink()
  const framer = new StreamFramer(sink, 65535)
  const a = request('big', { body: 'y'.repeat(60000) })
  const t0 = performance.now()
  for (let i = 0; i < a.length; i++) framer.push(a.subarray(i, i + 1))
  const ms = performance.now() - t0
  t.same(sink.frames[0], a)
  t.ok(ms < 1000, `took ${ms.toFixed(1)} ms`)
})
