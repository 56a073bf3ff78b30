// Property test: whatever bytes arrive, only SipParseError escapes from the message core.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs'
import { parseMessage, validateRequest, validateResponse, frameStream, SipParseError, type SipMessage } from '../../src/sip/index.js'

const corpusDir = new URL('../corpus/rfc4475/', import.meta.url)
const fuzzDir = new URL('./fuzz-corpus/', import.meta.url)
const seeds: Buffer[] = readdirSync(corpusDir).filter((f) => f.endsWith('.sip')).map((f) => readFileSync(new URL(f, corpusDir)))
seeds.push(readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url)))
seeds.push(readFileSync(new URL('../../bench/fixtures/ok200.sip', import.meta.url)))
try {
  for (const f of readdirSync(fuzzDir)) if (f.endsWith('.sip')) seeds.push(readFileSync(new URL(f, fuzzDir)))
} catch { /* no saved inputs yet */ }

function exercise(m: SipMessage): void {
  const tryIt = (f: () => unknown) => {
    try { f() } catch (e) { if (!(e instanceof SipParseError)) throw e }
  }
  tryIt(() => m.callId); tryIt(() => m.cseq); tryIt(() => m.from.uri); tryIt(() => m.to.uri)
  tryIt(() => m.via); tryIt(() => m.vias); tryIt(() => m.maxForwards); tryIt(() => m.routes)
  tryIt(() => m.recordRoutes); tryIt(() => m.contacts.map((c) => c.uri)); tryIt(() => m.contactStar)
  tryIt(() => m.topViaBranch); tryIt(() => m.fromTag); tryIt(() => m.toTag); tryIt(() => m.uri)
  tryIt(() => m.reason); tryIt(() => m.requestUri); tryIt(() => m.body); tryIt(() => m.contentType)
  for (let i = 0; i < m.headerCount; i++) { m.headerValue(i); m.headerName(i) }
  tryIt(() => (m.isRequest ? validateRequest(m) : validateResponse(m)))
  // edits must not throw on a parsed message (Via removal may find no Via: SipParseError)
  tryIt(() => {
    const e = m.edit().prependHeader('Via', 'SIP/2.0/UDP 127.0.1.1;branch=z9hG4bKf').setHeader('X-F', '1')
    if (m.isRequest) e.setMaxForwards(5).setRequestUri('sip:x@127.0.1.7')
    for (const r of m.routes.slice(0, 1)) e.removeElement(r)
    e.removeTopVia()
    parseMessage(e.toBuffer())
  })
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('insertTok' as const), pos: fc.nat(), tok: fc.constantFrom(',', ';', '"', '<', '>', '\\', ':', '\r\n', '\r\n ', '\n', '=', '%', '[', ']', '@', '?', ' ', '\0') }),
  fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 20 }) }),
)

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never

function mutate(seed: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(seed)
  for (const m of muts) {
    const pos = b.length === 0 ? 0 : m.pos % (b.length + 1)
    if (m.kind === 'flip' && b.length > 0) b[pos % b.length] = m.byte
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, pos), Buffer.from(m.bytes), b.subarray(pos)])
    else if (m.kind === 'insertTok') b = Buffer.concat([b.subarray(0, pos), Buffer.from(m.tok, 'latin1'), b.subarray(pos)])
    else if (m.kind === 'truncate') b = b.subarray(0, pos)
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + m.len)])
  }
  return b
}

let savedCrash = false

t.test('mutated corpus messages: only SipParseError escapes', async (t) => {
  let parsed = 0
  let rejected = 0
  fc.assert(
    fc.property(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }), (si, muts) => {
      const b = mutate(seeds[si]!, muts)
      try {
        frameStream(b, 0, b.length, 4096)
      } catch (e) {
        if (!(e instanceof SipParseError)) throw e
      }
      let m: SipMessage
      try {
        m = parseMessage(b)
        parsed++
      } catch (e) {
        if (!(e instanceof SipParseError)) throw e
        rejected++
        return
      }
      try {
        exercise(m)
      } catch (e) {
        // keep the first (unshrunk) failing input for the record; the shrunk one is in the report
        if (!savedCrash) {
          savedCrash = true
          mkdirSync(fuzzDir, { recursive: true })
          writeFileSync(new URL(`crash-${Date.now()}.sip`, fuzzDir), b)
        }
        throw e
      }
    }),
    { numRuns: Number(process.env['SIP_FUZZ_RUNS'] ?? 4000) },
  )
  t.ok(parsed > 100, `many mutants still parse (${parsed}) so accessors get exercised`)
  t.ok(rejected > 100, `many mutants are rejected (${rejected})`)
})

t.test('random bytes', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
    const b = Buffer.from(u)
    try { exercise(parseMessage(b)) } catch (e) { if (!(e instanceof SipParseError)) throw e }
  }), { numRuns: 2000 })
  t.pass('no foreign exception')
})
