import t from 'tap'
import { H, headerIdOf, canonicalHeaderName, expandHeaderName } from '../../src/sip/index.js'
import { classifyHeaderName } from '../../src/sip/headers.js'

t.test('names, compact forms and canonical spelling', async (t) => {
  const compact: Record<string, number> = { i: H.CallId, m: H.Contact, e: H.ContentEncoding, l: H.ContentLength,
    c: H.ContentType, f: H.From, s: H.Subject, k: H.Supported, t: H.To, v: H.Via, o: H.Event, u: H.AllowEvents,
    r: H.ReferTo, b: H.ReferredBy, x: H.SessionExpires, y: H.Identity }
  for (const [k, id] of Object.entries(compact)) {
    t.equal(headerIdOf(k), id, k)
    t.equal(headerIdOf(k.toUpperCase()), id, k.toUpperCase())
  }
  t.equal(headerIdOf('a'), H.Other, 'Accept-Contact has no id')
  t.equal(expandHeaderName('a'), 'Accept-Contact')
  t.equal(expandHeaderName('i'), 'Call-ID')
  t.equal(headerIdOf('call-id'), H.CallId)
  t.equal(headerIdOf('WWW-AUTHENTICATE'), H.WWWAuthenticate)
  t.equal(headerIdOf('X-Custom'), H.Other)
  t.equal(canonicalHeaderName(H.CSeq), 'CSeq')
  t.equal(canonicalHeaderName(H.CallId), 'Call-ID')
  t.equal(canonicalHeaderName(H.WWWAuthenticate), 'WWW-Authenticate')
  t.equal(canonicalHeaderName(999), '')
  for (let id = 1; id <= 37; id++) {
    const name = canonicalHeaderName(id)
    t.equal(headerIdOf(name), id, name)
    const b = Buffer.from('x' + name.toUpperCase() + 'y')
    t.equal(classifyHeaderName(b, 1, b.length - 1), id, 'bytes ' + name)
  }
  const odd = Buffer.from('Record-Rout_')
  t.equal(classifyHeaderName(odd, 0, odd.length), H.Other)
  const hi = Buffer.from([0xc3])
  t.equal(classifyHeaderName(hi, 0, 1), H.Other)
})
