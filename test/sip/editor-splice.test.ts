// toBuffer has two splicing strategies (per-range copies, and one copy + in-place moves when the
// output only grows); both must equal a plain reference splice for any set of patches.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { parseMessage } from '../../src/sip/index.js'

const invite = readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url))

/** Reference: stable sort by start, clamp overlaps like the editor, concatenate. */
function reference(buf: Buffer, start: number, end: number, patches: Array<[number, number, string]>): Buffer {
  const order = patches.map((p, i) => [p, i] as const).sort((a, b) => a[0][0] - b[0][0] || a[1] - b[1])
  const parts: Buffer[] = []
  let cursor = start
  for (const [[ps, pe, text]] of order) {
    const s = Math.max(ps, cursor)
    const e = Math.max(pe, s)
    parts.push(buf.subarray(cursor, s), Buffer.from(text, 'utf8'))
    cursor = e
  }
  parts.push(buf.subarray(cursor, end))
  return Buffer.concat(parts)
}

t.test('toBuffer equals the reference splice for random patch sets', async (t) => {
  // a prefix before the message checks offsets relative to msg.start
  const framed = Buffer.concat([Buffer.from('\r\n\r\n'), invite])
  const m = parseMessage(framed)
  const pos = fc.integer({ min: m.start, max: m.end })
  const patch = fc.tuple(pos, fc.nat({ max: 40 }), fc.oneof(fc.constant(''), fc.string({ maxLength: 30 }), fc.constant('é€x')))
    .map(([s, len, text]) => [s, Math.min(m.end, s + len), text] as [number, number, string])
  fc.assert(fc.property(fc.array(patch, { maxLength: 8 }), (patches) => {
    const ed = m.edit()
    for (const [s, e, text] of patches) ed.replaceRange(s, e, text)
    const got = ed.toBuffer()
    const want = reference(framed, m.start, m.end, patches)
    if (!got.equals(want)) throw new Error(`mismatch for ${JSON.stringify(patches)}`)
  }), { numRuns: 2000 })
  t.pass('2000 random patch sets')
})

t.test('growing and shrinking edits on the same message', async (t) => {
  const m = parseMessage(invite)
  const grown = m.edit().replaceRange(m.start, m.start, 'X').replaceRange(m.end, m.end, 'Y').toBuffer()
  t.equal(grown.toString('latin1'), 'X' + invite.toString('latin1') + 'Y')
  const shrunk = m.edit().replaceRange(m.start, m.start + 7, '').replaceRange(m.end - 3, m.end, 'abcd').toBuffer()
  t.equal(shrunk.toString('latin1'), invite.toString('latin1').slice(7, -3) + 'abcd')
})
