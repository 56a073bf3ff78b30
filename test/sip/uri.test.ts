import t from 'tap'
import { parseUri, SipParseError } from '../../src/sip/index.js'

t.test('sip URIs', async (t) => {
  const u = parseUri('sip:alice:secret@Example.COM:5070;transport=TCP;lr;Maddr=1.2.3.4?subject=hi&priority=urgent')
  t.equal(u.scheme, 'sip')
  t.equal(u.user, 'alice')
  t.equal(u.password, 'secret')
  t.equal(u.host, 'Example.COM')
  t.equal(u.port, 5070)
  t.same(u.params, { transport: 'TCP', lr: true, maddr: '1.2.3.4' })
  t.same(u.headers, { subject: 'hi', priority: 'urgent' })
  t.equal(parseUri('SIPS:[2001:db8::1]:5061').host, '[2001:db8::1]')
  t.equal(parseUri('SIPS:[2001:db8::1]:5061').scheme, 'sips')
  t.equal(parseUri('sip:%61lice@h').user, 'alice', 'escapes are decoded in user')
  t.equal(parseUri('sip:a%00b@h').user, 'a\u0000b')
  t.equal(parseUri('sip:user;par=u%40example.net@example.com').user, 'user;par=u@example.net')
  t.equal(parseUri('sip:h').user, undefined)
  t.equal(parseUri('sip:h').port, undefined)
})

t.test('tel and other schemes', async (t) => {
  const tel = parseUri('tel:+1-201-555-0123;phone-context=example.com')
  t.equal(tel.scheme, 'tel')
  t.equal(tel.user, '+1-201-555-0123')
  t.same(tel.params, { 'phone-context': 'example.com' })
  const o = parseUri('soap.beep://192.0.2.103:3002')
  t.equal(o.scheme, 'soap.beep')
  t.equal(o.raw, 'soap.beep://192.0.2.103:3002')
})

t.test('bad URIs throw SipParseError 400', async (t) => {
  for (const bad of ['', 'nocolon', ':x', 'sip:', 'sip:@h', 'sip:h:99999', 'sip:h:12a', 'sip:h;;x', 'sip:h; lr',
    'sip:[::1', 'sip:a b@h', '1sip:h', 'sip:h?', 'sip:h?=v', 'sip:h;=v', 'sip:<h>']) {
    let err: unknown
    try { parseUri(bad) } catch (e) { err = e }
    t.ok(err instanceof SipParseError && err.status === 400, JSON.stringify(bad))
  }
})
