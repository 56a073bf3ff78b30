import t from 'tap'
import fc from 'fast-check'
import { BencodeError, decode, encode, isDict, type BValue } from '../../src/media/bencode.js'

const b = (s: string) => Buffer.from(s, 'latin1')

t.test('encodes the NG shapes rtpengine expects, dict keys sorted by bytes', async (t) => {
  t.equal(encode({ command: 'ping' }).toString(), 'd7:command4:pinge')
  t.equal(
    encode({ sdp: Buffer.from('v=0\r\n'), 'call-id': 'abc', direction: ['external', 'internal'], 'from-tag': 'x' }).toString(),
    'd7:call-id3:abc9:directionl8:external8:internale8:from-tag1:x3:sdp5:v=0\r\ne',
  )
  t.equal(encode({ b: 1, a: -42, c: 0 }).toString(), 'd1:ai-42e1:bi1e1:ci0ee')
  t.equal(encode([true, false, 10, '']).toString(), 'li1ei0ei10e0:e')
  t.equal(encode({ skip: undefined, nul: null, keep: 'x' }).toString(), 'd4:keep1:xe', 'undefined/null values are skipped')
  t.equal(encode('é').toString('latin1'), '2:\xc3\xa9', 'string length is in UTF-8 bytes')
  t.equal(encode({ command: 'ping' }, 'ck1 ').toString(), 'ck1 d7:command4:pinge', 'prefix written in front')
  // Byte order, not UTF-16 order: U+FF61 (EF BD A1) sorts before U+1F600 (F0 9F 98 80) as bytes.
  const keys = Object.keys(decode(encode({ '\u{1F600}': 1, '\uFF61': 2 }), { strings: 'utf8' }) as object)
  t.same(keys, ['\uFF61', '\u{1F600}'])
  t.equal(encode(1234567890123).toString(), 'i1234567890123e')
})

t.test('encode refuses values bencode cannot carry', async (t) => {
  t.throws(() => encode(1.5), BencodeError)
  t.throws(() => encode(Number.NaN), BencodeError)
  t.throws(() => encode(2 ** 60), BencodeError)
  t.throws(() => encode({ f: (() => 1) as unknown as string }), BencodeError)
  let deep: unknown = 'x'
  for (let i = 0; i < 70; i++) deep = [deep]
  t.throws(() => encode(deep as BValue), /deeper than 64/)
})

t.test('decodes rtpengine replies (unsorted keys, binary-safe strings)', async (t) => {
  const v = decode(b('d3:sdp5:v=0\r\n6:result2:oke'))
  t.ok(isDict(v))
  t.same({ ...(v as object) }, { sdp: 'v=0\r\n', result: 'ok' })
  const bin = decode(Buffer.from([0x33, 0x3a, 0xff, 0x00, 0x80]))
  t.same(Buffer.from(bin as string, 'latin1'), Buffer.from([0xff, 0x00, 0x80]), 'latin1 round-trips any byte')
  const asBuf = decode(b('l3:abce'), { strings: 'buffer' }) as Buffer[]
  t.ok(Buffer.isBuffer(asBuf[0]))
  t.same(decode(b('i-7e')), -7)
  t.same(decode(b('i0e')), 0)
  t.same(decode(b('0:')), '')
  t.same(decode(b('le')), [])
  t.same({ ...(decode(b('de')) as object) }, {})
  t.same(decode(b('xx4:spam'), { offset: 2 }), 'spam')
  const proto = decode(b('d9:__proto__d1:ai1eee')) as Record<string, unknown>
  t.equal(Object.getPrototypeOf(proto), null, 'dicts have no prototype')
  t.same({ ...(proto['__proto__'] as object) }, { a: 1 }, "'__proto__' is ordinary data")
  t.equal(({} as Record<string, unknown>)['a'], undefined, 'Object.prototype untouched')
})

t.test('malformed input: a BencodeError naming the offset, never another exception', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['', /unexpected end/],
    ['i', /unterminated integer/],
    ['ie', /empty integer/],
    ['i-e', /empty integer/],
    ['i-0e', /leading zero/],
    ['i03e', /leading zero/],
    ['i1x2e', /bad digit/],
    ['i99999999999999999e', /too long|beyond/],
    ['i9007199254740993e', /beyond 2\^53/],
    ['5:abc', /runs past the end/],
    ['99999999999:x', /too long|runs past/],
    ['4294967296:', /runs past the end/],
    ['03:abc', /leading zero/],
    ['3abc', /bad digit in string length/],
    [':abc', /unexpected byte/],
    ['l', /unterminated list/],
    ['li1e', /unterminated list/],
    ['d', /unterminated dict/],
    ['d3:abc', /unexpected end/],
    ['di1ei2ee', /not a string/],
    ['d1:ai1e1:ai2ee', /duplicate dict key 'a'/],
    ['i1ei2e', /trailing bytes/],
    ['d7:command4:pingeX', /trailing bytes/],
    ['x', /unexpected byte 0x78/],
    ['garbage', /unexpected byte/],
    ['l'.repeat(40) + 'e'.repeat(40), /deeper than 32/],
  ]
  for (const [input, re] of bad) {
    t.throws(() => decode(b(input)), re, JSON.stringify(input))
    try { decode(b(input)) } catch (err) {
      t.ok(err instanceof BencodeError && err.offset >= 0, `${JSON.stringify(input)} -> BencodeError with offset`)
    }
  }
  t.throws(() => decode(b('l'.repeat(5) + 'e'.repeat(5)), { maxDepth: 4 }), /deeper than 4/)
  // A million nested lists: bounded by depth, no stack overflow.
  t.throws(() => decode(Buffer.alloc(1_000_000, 'l')), /deeper than 32/)
})

const value: fc.Arbitrary<BValue> = fc.letrec<{ v: BValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: -1e12, max: 1e12 }),
    fc.string({ unit: 'binary-ascii', maxLength: 20 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: 'binary-ascii', maxLength: 6 }), tie('v'), { maxKeys: 4 }),
  ),
})).v

t.test('property: decode(encode(v)) == v; random bytes only ever throw BencodeError', async (t) => {
  fc.assert(fc.property(value, (v) => {
    const round = decode(encode(v as never), { strings: 'utf8' })
    t.same(round, v)
    return true
  }), { numRuns: 300 })
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    try { decode(Buffer.from(bytes)) } catch (err) { return err instanceof BencodeError }
    return true
  }), { numRuns: 3000 })
  // Mutations of a valid NG message: every outcome is a value or a BencodeError.
  const ok = encode({ command: 'offer', 'call-id': 'c', flags: ['a', 'b'], n: 12 })
  fc.assert(fc.property(fc.nat(ok.length - 1), fc.nat(255), (at, byte) => {
    const m = Buffer.from(ok)
    m[at] = byte
    try { decode(m) } catch (err) { return err instanceof BencodeError }
    return true
  }), { numRuns: 2000 })
})

t.test('a value larger than the encoder scratch space is encoded whole, and the next one still fits', async (t) => {
  const big = Buffer.alloc(100_000, 0x61)
  const out = encode({ sdp: big, n: -7 }, 'ck ')
  t.equal(out.length, 3 + 'd1:ni-7e3:sdp100000:'.length + 100_000 + 1)
  t.same(decode(out, { offset: 3, strings: 'buffer' }), { n: -7, sdp: big })
  t.equal(encode({ command: 'ping' }, 'ck2 ').toString(), 'ck2 d7:command4:pinge', 'a small value after a huge one')
})

t.test('shallow decode (NG delete replies): nested statistics are checked but not built', async (t) => {
  const reply = encode({ result: 'ok', warning: 'w', created: 5, tags: { a: { medias: [{ streams: [{ 'local port': 1 }] }] } }, totals: {}, list: ['x'] })
  t.same(decode(reply, { shallow: true }), { result: 'ok', warning: 'w', created: 5 })
  t.same(decode(reply), { result: 'ok', warning: 'w', created: 5, tags: { a: { medias: [{ streams: [{ 'local port': 1 }] }] } }, totals: {}, list: ['x'] })
  // Skipped values get the same checks: a truncated, overlong or too deep one is still an error.
  t.throws(() => decode(b('d6:result2:ok4:tagsd1:ad1:bi1ee'), { shallow: true }), BencodeError)
  t.throws(() => decode(b('d4:tagsl9:xe6:result2:oke'), { shallow: true }), BencodeError)
  t.throws(() => decode(b('d4:tagsdi1ei2ee6:result2:oke'), { shallow: true }), /dict key is not a string/)
  t.throws(() => decode(b(`d4:tags${'l'.repeat(40)}${'e'.repeat(40)}e`), { shallow: true }), /nesting deeper/)
})
