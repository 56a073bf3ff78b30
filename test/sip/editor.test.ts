import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseMessage, H, SipParseError } from '../../src/sip/index.js'

const invite = readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url))
const ok200 = readFileSync(new URL('../../bench/fixtures/ok200.sip', import.meta.url))
const crlf = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'), 'utf8')

t.test('forward step: add Via + Record-Route, decrement Max-Forwards', async (t) => {
  const m = parseMessage(invite)
  const out = m.edit()
    .prependHeader('Via', 'SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bKedge1')
    .prependHeader('Record-Route', '<sip:127.0.1.1;lr;d=abc>')
    .setMaxForwards(m.maxForwards! - 1)
    .toBuffer()
  const f = parseMessage(out)
  t.equal(f.via.branch, 'z9hG4bKedge1', 'new Via is the top Via')
  t.equal(f.vias.length, 2)
  t.equal(f.vias[1]!.branch, 'z9hG4bK776asdhds.1')
  t.equal(f.recordRoutes.length, 3)
  t.equal(f.recordRoutes[0]!.uri.params['d'], 'abc', 'new Record-Route is the first')
  t.equal(f.maxForwards, 69)
  t.equal(f.callId, m.callId)
  t.same(f.body, m.body, 'body unchanged')
  t.equal(f.contentLength, m.contentLength)
  t.equal(out.length, invite.length + 'Via: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bKedge1\r\n'.length +
    'Record-Route: <sip:127.0.1.1;lr;d=abc>\r\n'.length)
})

t.test('no edits reproduces the message bytes', async (t) => {
  const m = parseMessage(invite)
  t.same(m.edit().toBuffer(), invite)
  // only the message's own range is emitted (UDP: octets beyond Content-Length dropped)
  const extra = Buffer.concat([invite, Buffer.from('GARBAGE')])
  t.same(parseMessage(extra).edit().toBuffer(), invite)
})

t.test('removeTopVia on a response, comma lists and single lines', async (t) => {
  const m = parseMessage(ok200)
  const r = parseMessage(m.edit().removeTopVia().toBuffer())
  t.equal(r.vias.length, 1)
  t.equal(r.via.branch, 'z9hG4bK776asdhds.1')
  t.equal(r.headerCount, m.headerCount - 1, 'the whole line went')

  const list = parseMessage(crlf('SIP/2.0 200 OK\nVia: SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/UDP b;branch=z9hG4bK2,SIP/2.0/UDP c;branch=z9hG4bK3\nCall-ID: x\n\n'))
  const a = parseMessage(list.edit().removeTopVia().toBuffer())
  t.same(a.vias.map((v) => v.host), ['b', 'c'])
  t.equal(a.getHeader('Via'), 'SIP/2.0/UDP b;branch=z9hG4bK2,SIP/2.0/UDP c;branch=z9hG4bK3')
  const mid = parseMessage(list.edit().removeElement(list.vias[1]!).toBuffer())
  t.same(mid.vias.map((v) => v.host), ['a', 'c'])
  const last = parseMessage(list.edit().removeElement(list.vias[2]!).toBuffer())
  t.same(last.vias.map((v) => v.host), ['a', 'b'])
  t.equal(last.getHeader('Via'), 'SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/UDP b;branch=z9hG4bK2')
})

t.test('pop a Route element (loose routing)', async (t) => {
  const m = parseMessage(crlf('BYE sip:b@h SIP/2.0\nRoute: <sip:edge;lr>, <sip:next;lr>\nRoute: <sip:third;lr>\nCall-ID: x\n\n'))
  const r1 = parseMessage(m.edit().removeElement(m.routes[0]!).toBuffer())
  t.same(r1.routes.map((r) => r.uri.host), ['next', 'third'])
  const r2 = parseMessage(m.edit().removeElement(m.routes[2]!).toBuffer())
  t.same(r2.routes.map((r) => r.uri.host), ['edge', 'next'])
  t.equal(r2.count(H.Route), 1)
  t.throws(() => m.edit().removeElement({ start: 0, end: 3 }), RangeError)
})

t.test('setHeader, removeHeaders, appendHeader, setRequestUri, replaceRange', async (t) => {
  const m = parseMessage(invite)
  const out = m.edit()
    .setHeader(H.Contact, '<sip:edge@127.0.1.1:5060>')
    .removeHeaders('User-Agent')
    .removeHeaders(H.RecordRoute)
    .appendHeader('X-Edge', 'yes')
    .setHeader('X-New', 'fresh')
    .setRequestUri('sip:100@127.0.1.7:5060')
    .toBuffer()
  const r = parseMessage(out)
  t.equal(r.contacts[0]!.uri.host, '127.0.1.1')
  t.equal(r.getHeader('user-agent'), undefined)
  t.equal(r.recordRoutes.length, 0)
  t.equal(r.getHeader('X-Edge'), 'yes')
  t.equal(r.getHeader('x-new'), 'fresh')
  t.equal(r.requestUri, 'sip:100@127.0.1.7:5060')
  t.equal(r.uri.port, 5060)
  t.same(r.body, m.body)
  // setHeader collapses repeated lines into one
  const two = parseMessage(crlf('OPTIONS sip:a SIP/2.0\nX-A: 1\nX-A: 2\nCall-ID: q\n\n'))
  const one = parseMessage(two.edit().setHeader('X-A', '3').toBuffer())
  t.same(one.getHeaders('x-a'), ['3'])
  // replaceRange on the Call-ID value
  const i = m.indexOf(H.CallId)
  const c = parseMessage(m.edit().replaceRange(m.headerValueStart(i), m.headerValueEnd(i), 'new-id').toBuffer())
  t.equal(c.callId, 'new-id')
  // prepend when the header is absent goes right after the start line
  const p = parseMessage(m.edit().prependHeader('Route', '<sip:x;lr>').toBuffer())
  t.equal(p.headerId(0), H.Route)
  t.throws(() => m.edit().setHeader('X', 'a\r\nInjected: 1'), SipParseError)
  t.throws(() => m.edit().setMaxForwards(300), RangeError)
  t.throws(() => m.edit().replaceRange(-1, 2, ''), RangeError)
})

t.test('overlapping edits do not corrupt output', async (t) => {
  const m = parseMessage(ok200)
  const out = m.edit().removeHeaders(H.Via).removeTopVia().prependHeader('Via', 'SIP/2.0/UDP n;branch=z9hG4bKn').toBuffer()
  const r = parseMessage(out)
  t.same(r.vias.map((v) => v.host), ['n'])
})

t.test('Max-Forwards added when absent; UTF-8 values', async (t) => {
  const m = parseMessage(crlf('INVITE sip:a SIP/2.0\nCall-ID: q\n\n'))
  const r = parseMessage(m.edit().setMaxForwards(70).appendHeader('Subject', 'héllo ✓').toBuffer())
  t.equal(r.maxForwards, 70)
  t.equal(r.getHeader('Subject'), 'héllo ✓')
})
