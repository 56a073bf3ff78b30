import t from 'tap'
import { readFileSync } from 'node:fs'
import { frameStream, skipKeepAlives, parseMessage, SipParseError } from '../../src/sip/index.js'
import { throwsStatus } from './fixtures/throws.js'



const invite = readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url))
const ok200 = readFileSync(new URL('../../bench/fixtures/ok200.sip', import.meta.url))
const MAX = 65535

t.test('keep-alives are skipped', async (t) => {
  const b = Buffer.from('\r\n\r\n\r\nINVITE')
  t.equal(skipKeepAlives(b, 0, b.length), 6)
  t.equal(skipKeepAlives(b, 0, 4), 4)
  t.equal(skipKeepAlives(Buffer.from('x'), 0, 1), 0)
})

t.test('one whole message', async (t) => {
  t.equal(frameStream(invite, 0, invite.length, MAX), invite.length)
})

t.test('two messages in one chunk, with keep-alives between', async (t) => {
  const b = Buffer.concat([invite, Buffer.from('\r\n\r\n'), ok200])
  const e1 = frameStream(b, 0, b.length, MAX)
  t.equal(e1, invite.length)
  const s2 = skipKeepAlives(b, e1, b.length)
  const e2 = frameStream(b, s2, b.length, MAX)
  t.equal(e2, b.length)
  t.equal(parseMessage(b, s2, e2 - s2).status, 200)
})

t.test('partial reads, byte by byte', async (t) => {
  const b = Buffer.concat([invite, ok200])
  const frames: number[] = []
  let start = 0
  for (let avail = 1; avail <= b.length; avail++) {
    start = skipKeepAlives(b, start, avail)
    if (start >= avail) continue
    const end = frameStream(b, start, avail, MAX)
    if (end < 0) continue
    frames.push(end)
    start = end
  }
  t.same(frames, [invite.length, b.length], 'each message framed exactly once, at the right byte')
})

t.test('Content-Length problems', async (t) => {
  const head = 'OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n'
  const f = (s: string, max = MAX) => { const b = Buffer.from(s); return frameStream(b, 0, b.length, max) }
  throwsStatus(t, () => f(head + '\r\n'), 400, 'missing')
  throwsStatus(t, () => f(head + 'Content-Length: -5\r\n\r\n'), 400, 'negative')
  throwsStatus(t, () => f(head + 'Content-Length: 1x\r\n\r\n'), 400, 'not a number')
  throwsStatus(t, () => f(head + 'l: 3\r\nContent-Length: 4\r\n\r\nabcd'), 400, 'conflicting')
  throwsStatus(t, () => f(head + 'Content-Length: 999999999\r\n\r\n'), 413, 'oversized')
  throwsStatus(t, () => f(head + 'Content-Length: 100\r\n\r\n', 120), 413, 'total over max')
  t.equal(f(head + 'content-length :  3 \r\n\r\nabcEXTRA'), Buffer.byteLength(head + 'content-length :  3 \r\n\r\nabc'))
  t.equal(f(head + 'L: 3\r\n\r\nab'), -1, 'needs more body')
  t.equal(f(head + 'L: 0\n\n'), Buffer.byteLength(head) + 6, 'bare LF')
  let long = 'OPTIONS sip:a SIP/2.0\r\n'
  while (long.length < 300) long += 'X-Pad: aaaaaaaaaaaaaaaaaaaa\r\n'
  throwsStatus(t, () => f(long, 200), 413, 'header section bigger than max')
  t.equal(f(long.slice(0, 150), 200), -1, 'still could fit')
  try { f(head + '\r\n') } catch (e) { t.ok(e instanceof SipParseError) }
})
