// The DNS message format (RFC 1035 §4): what the stub resolver sends, and that a hostile or broken answer is
// an error to skip, never a crash or a loop.
import t from 'tap'
import { QTYPE, decodeAnswer, encodeQuery } from '../../src/dns/wire.js'

t.test('a query: one question, recursion desired, an EDNS0 OPT record', async (t) => {
  const q = encodeQuery(0x1234, '_sip._udp.Carrier.test.', QTYPE.SRV)
  t.equal(q.readUInt16BE(0), 0x1234)
  t.equal(q.readUInt16BE(2), 0x0100, 'RD')
  t.equal(q.readUInt16BE(4), 1, 'one question')
  t.equal(q.readUInt16BE(10), 1, 'one additional: OPT')
  t.same(decodeAnswer(q).question, { name: '_sip._udp.Carrier.test', type: QTYPE.SRV }, 'the question reads back')
  t.throws(() => encodeQuery(1, 'x'.repeat(64) + '.test', QTYPE.A), /label of 64 bytes/)
  t.throws(() => encodeQuery(1, 'a..test', QTYPE.A), /label of 0 bytes/)
})

t.test('answers with compression, TTLs, and malformed ones', async (t) => {
  // Header: id 7, QR+RD+RA, 1 question, 1 answer. Question: a.test A. Answer: pointer to the question name, A, TTL 300.
  const name = Buffer.from([1, 0x61, 4, 0x74, 0x65, 0x73, 0x74, 0])
  const header = Buffer.from([0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0])
  const question = Buffer.concat([name, Buffer.from([0, 1, 0, 1])])
  const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 127, 0, 2, 1])
  const ok = decodeAnswer(Buffer.concat([header, question, answer]))
  t.same(ok.answers, [{ name: 'a.test', ttl: 300, data: { type: 1, address: '127.0.2.1' } }])
  t.equal(ok.rcode, 0)
  t.throws(() => decodeAnswer(Buffer.concat([header, question, answer.subarray(0, 10)])), /truncated/, 'a record cut short')
  const loop = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 127, 0, 2, 1])
  const selfPointer = Buffer.concat([header, Buffer.from([0xc0, 12, 0, 1, 0, 1]), loop])
  t.throws(() => decodeAnswer(selfPointer), /pointer/, 'a name pointing at itself is refused, not followed forever')
  t.throws(() => decodeAnswer(Buffer.alloc(5)), /shorter than its header/)
  const ttlTopBit = Buffer.from(answer)
  ttlTopBit.writeUInt32BE(0x80000001, 6)
  t.equal(decodeAnswer(Buffer.concat([header, question, ttlTopBit])).answers[0]!.ttl, 0, 'RFC 2181 §8: a TTL with the top bit set is 0')
  const badA = Buffer.from(answer)
  badA.writeUInt16BE(3, 10)
  t.throws(() => decodeAnswer(Buffer.concat([header, question, badA])), /bad A record|truncated/)
})
