import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseMessage, H, SipParseError } from '../../src/sip/index.js'
import { throwsStatus } from './fixtures/throws.js'



const invite = readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url))
const ok200 = readFileSync(new URL('../../bench/fixtures/ok200.sip', import.meta.url))
const crlf = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'), 'utf8')

t.test('request line and core accessors of a realistic INVITE', async (t) => {
  const m = parseMessage(invite)
  t.equal(m.isRequest, true)
  t.equal(m.method, 'INVITE')
  t.equal(m.status, 0)
  t.equal(m.requestUri, 'sip:+15551234567@edge.example.com;user=phone')
  t.equal(m.uri.user, '+15551234567')
  t.equal(m.uri.host, 'edge.example.com')
  t.same(m.uri.params, { user: 'phone' })
  t.equal(m.callId, 'a84b4c76e66710@pc33.carrier.example.net')
  t.same(m.cseq, { seq: 314159, method: 'INVITE' })
  t.equal(m.via.branch, 'z9hG4bK776asdhds.1')
  t.equal(m.via.rport, true)
  t.equal(m.via.transport, 'UDP')
  t.equal(m.via.host, '198.51.100.10')
  t.equal(m.via.port, 5060)
  t.equal(m.topViaBranch, 'z9hG4bK776asdhds.1')
  t.equal(m.from.tag, '1928301774')
  t.equal(m.fromTag, '1928301774')
  t.equal(m.from.displayName, 'Alice')
  t.equal(m.from.uri.user, 'alice')
  t.equal(m.to.tag, undefined)
  t.equal(m.toTag, undefined)
  t.equal(m.maxForwards, 70)
  t.equal(m.recordRoutes.length, 2)
  t.equal(m.recordRoutes[0]!.uri.params['lr'], true)
  t.equal(m.recordRoutes[1]!.uriText, 'sip:203.0.113.9;lr')
  t.equal(m.routes.length, 0)
  t.equal(m.contacts[0]!.uri.port, 5060)
  t.equal(m.contactStar, false)
  t.equal(m.contentType, 'application/sdp')
  t.equal(m.contentLength, m.body.length)
  t.ok(m.body.toString().startsWith('v=0\r\n'))
  t.equal(m.body.buffer, invite.buffer, 'body is a view, not a copy')
  t.equal(m.getHeader('user-agent'), 'CarrierSBC/4.2')
  t.equal(m.getHeader(H.Supported), 'replaces, timer')
  t.equal(m.has(H.Route), false)
  t.equal(m.end, invite.length)
})

t.test('header index offsets point into the buffer', async (t) => {
  const m = parseMessage(invite)
  const i = m.indexOf(H.CallId)
  t.equal(m.headerId(i), H.CallId)
  t.equal(m.headerName(i), 'Call-ID')
  t.equal(invite.toString('latin1', m.headerValueStart(i), m.headerValueEnd(i)), m.callId)
  t.equal(invite.toString('latin1', m.headerLineStart(i), m.headerLineEnd(i)), 'Call-ID: ' + m.callId + '\r\n')
  const rr = m.recordRoutes[1]!
  t.equal(invite.toString('latin1', rr.start, rr.end), '<sip:203.0.113.9;lr>')
})

t.test('response accessors', async (t) => {
  const m = parseMessage(ok200)
  t.equal(m.isRequest, false)
  t.equal(m.status, 200)
  t.equal(m.reason, 'OK')
  t.equal(m.method, '')
  t.equal(m.vias.length, 2)
  t.equal(m.vias[1]!.received, '198.51.100.10')
  t.equal(m.vias[1]!.rport, 5060)
  t.equal(m.vias[1]!.headerIndex, 1)
  t.equal(m.toTag, 'as58f4201b')
  t.throws(() => m.uri, SipParseError)
})

t.test('compact forms, folding, comma lists, case-insensitive names', async (t) => {
  const m = parseMessage(crlf(
    'BYE sip:bob@example.com SIP/2.0\n' +
    'v: SIP/2.0/TCP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK2;received=[2001:db8::9]\n' +
    'VIA  : SIP / 2.0 / sctp c.example.com ; branch = z9hG4bK3\n' +
    'f: Bob <sip:bob@example.com>;tag=a\n' +
    't: sip:carol@example.com;tag=b\n' +
    'i: abc@host\n' +
    'CSEQ: 7 BYE\n' +
    'route: <sip:p1.example.com;lr>,\n  <sip:p2.example.com;lr>\n' +
    'm: "Bob, \\"the\\" builder" <sip:bob@192.0.2.4>;expires=60, <sip:bob2@192.0.2.5>\n' +
    'Subject: first\n\tsecond\n' +
    'l: 0\n\n'))
  t.equal(m.vias.length, 3)
  t.same(m.vias.map((v) => v.branch), ['z9hG4bK1', 'z9hG4bK2', 'z9hG4bK3'])
  t.equal(m.vias[1]!.host, '[2001:db8::1]')
  t.equal(m.vias[1]!.port, 5070)
  t.equal(m.vias[1]!.received, '[2001:db8::9]')
  t.equal(m.vias[2]!.transport, 'SCTP')
  t.equal(m.from.tag, 'a')
  t.equal(m.to.uri.user, 'carol')
  t.equal(m.to.tag, 'b')
  t.equal(m.callId, 'abc@host')
  t.equal(m.cseq.method, 'BYE')
  t.same(m.routes.map((r) => r.uri.host), ['p1.example.com', 'p2.example.com'])
  t.equal(m.contacts.length, 2)
  t.equal(m.contacts[0]!.displayName, 'Bob, "the" builder')
  t.equal(m.contacts[0]!.params['expires'], '60')
  t.equal(m.getHeader('subject'), 'first second')
  t.same(m.getHeaders('Route'), ['<sip:p1.example.com;lr>, <sip:p2.example.com;lr>'])
  t.equal(m.contentLength, 0)
})

t.test('bare LF line ends are accepted', async (t) => {
  const m = parseMessage(Buffer.from('OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nCall-ID: q\n\n'))
  t.equal(m.callId, 'q')
  t.equal(m.topViaBranch, 'z9hG4bKx')
  t.equal(m.body.length, 0)
})

t.test('UDP body rules', async (t) => {
  const base = 'MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n'
  const m1 = parseMessage(Buffer.from(base + 'Content-Length: 5\r\n\r\nhelloEXTRA'))
  t.equal(m1.body.toString(), 'hello', 'octets beyond Content-Length are ignored')
  const m2 = parseMessage(Buffer.from(base + '\r\nwhole rest'))
  t.equal(m2.body.toString(), 'whole rest', 'no Content-Length: rest of datagram')
  throwsStatus(t, () => parseMessage(Buffer.from(base + 'Content-Length: 50\r\n\r\nshort')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from(base + 'Content-Length: -1\r\n\r\n')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from(base + 'Content-Length: abc\r\n\r\n')), 400)
  // offset/length select a datagram inside a larger buffer
  const big = Buffer.concat([Buffer.from('JUNK'), Buffer.from(base + 'Content-Length: 2\r\n\r\nok'), Buffer.from('TAIL')])
  const m3 = parseMessage(big, 4, big.length - 8)
  t.equal(m3.body.toString(), 'ok')
  t.equal(m3.start, 4)
})

t.test('start line errors', async (t) => {
  throwsStatus(t, () => parseMessage(Buffer.from('INVITE sip:a@b XIP/2.0\r\n\r\n')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from('SIP/2.0 2000 OK\r\n\r\n')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from('SIP/2.0 20 OK\r\n\r\n')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from('INVITE <sip:a@b> SIP/2.0\r\n\r\n')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from('INVITE sip:a@b SIP/2.0\r\nVia: x\r\n')), 400, 'no empty line')
  throwsStatus(t, () => parseMessage(Buffer.from('INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n')), 400)
  throwsStatus(t, () => parseMessage(Buffer.from('')), 400)
  const m = parseMessage(Buffer.from('\r\n\r\nSIP/2.0 180 \r\n\r\n'))
  t.equal(m.status, 180)
  t.equal(m.reason, '')
  t.equal(m.versionOk, true)
  // another SIP version parses (so a 505 can be built from its headers); validate answers 505
  t.equal(parseMessage(Buffer.from('INVITE sip:a@b SIP/3.0\r\n\r\n')).versionOk, false)
})

t.test('guard rails: header cap, Via cap, single-value headers', async (t) => {
  let s = 'OPTIONS sip:a@b SIP/2.0\r\n'
  for (let i = 0; i < 300; i++) s += `X-H${i}: v\r\n`
  throwsStatus(t, () => parseMessage(Buffer.from(s + '\r\n')), 513)
  let v = 'OPTIONS sip:a@b SIP/2.0\r\n'
  for (let i = 0; i < 100; i++) v += `Via: SIP/2.0/UDP h${i};branch=z9hG4bK${i}\r\n`
  const m = parseMessage(Buffer.from(v + '\r\n'))
  throwsStatus(t, () => m.vias, 483)
  const two = parseMessage(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>, <sip:c@d>\r\n\r\n'))
  throwsStatus(t, () => two.from, 400)
  const missing = parseMessage(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\n\r\n'))
  throwsStatus(t, () => missing.callId, 400)
  throwsStatus(t, () => missing.via, 400)
  t.equal(missing.maxForwards, undefined)
  t.equal(missing.topViaBranch, undefined)
  const bigMf = parseMessage(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 256\r\n\r\n'))
  throwsStatus(t, () => bigMf.maxForwards, 400)
})

t.test('Contact star and addr-spec header params', async (t) => {
  const m = parseMessage(Buffer.from('REGISTER sip:r SIP/2.0\r\nContact: *\r\nExpires: 0\r\n\r\n'))
  t.equal(m.contactStar, true)
  t.same(m.contacts, [])
  const c = parseMessage(Buffer.from('REGISTER sip:r SIP/2.0\r\nContact: sip:u@h;expires=30;q=0.5\r\n\r\n'))
  t.equal(c.contacts[0]!.uri.host, 'h')
  t.same(c.contacts[0]!.uri.params, {}, 'params after an addr-spec are header params')
  t.same(c.contacts[0]!.params, { expires: '30', q: '0.5' })
})
