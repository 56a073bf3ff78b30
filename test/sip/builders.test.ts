import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseMessage, buildResponse, buildCancel, buildAck, buildOptions, newBranch, newTag, newCallId,
  reasonPhrase, validateRequest, validateResponse, H } from '../../src/sip/index.js'

const invite = parseMessage(readFileSync(new URL('../../bench/fixtures/invite.sip', import.meta.url)))

t.test('buildResponse copies the dialog headers and adds a To tag', async (t) => {
  const r = parseMessage(buildResponse(invite, 486, undefined, { toTag: 'edge1', headers: [['Retry-After', '30']] }))
  t.equal(r.status, 486)
  t.equal(r.reason, 'Busy Here')
  t.equal(r.via.branch, invite.via.branch)
  t.equal(r.vias.length, invite.vias.length)
  t.equal(r.callId, invite.callId)
  t.same(r.cseq, invite.cseq)
  t.equal(r.fromTag, invite.fromTag)
  t.equal(r.toTag, 'edge1')
  t.equal(r.getHeader(H.RetryAfter), '30')
  t.equal(r.contentLength, 0)
  validateResponse(r)
  const trying = parseMessage(buildResponse(invite, 100, undefined, { toTag: 'x' }))
  t.equal(trying.toTag, undefined, '100 Trying carries no To tag')
  const withBody = parseMessage(buildResponse(invite, 200, 'Fine', { body: 'v=0\r\n', toTag: 'z' }))
  t.equal(withBody.reason, 'Fine')
  t.equal(withBody.body.toString(), 'v=0\r\n')
  t.equal(withBody.contentType, 'application/sdp')
  t.throws(() => buildResponse(invite, 99))
  t.throws(() => buildResponse(invite, 200, 'x', { headers: [['X', 'a\nb']] }))
})

t.test('buildCancel: same R-URI, top Via only, CSeq number', async (t) => {
  const fwd = parseMessage(invite.edit().prependHeader('Via', 'SIP/2.0/UDP 127.0.1.1;branch=z9hG4bKb1').prependHeader('Route', '<sip:127.0.1.7;lr>').toBuffer())
  const c = parseMessage(buildCancel(fwd))
  t.equal(c.method, 'CANCEL')
  t.equal(c.requestUri, fwd.requestUri)
  t.equal(c.vias.length, 1)
  t.equal(c.via.branch, 'z9hG4bKb1')
  t.same(c.cseq, { seq: 314159, method: 'CANCEL' })
  t.equal(c.routes[0]!.uri.host, '127.0.1.7')
  t.equal(c.fromTag, invite.fromTag)
  validateRequest(c)
})

t.test('buildAck for a non-2xx takes To from the response', async (t) => {
  const resp = parseMessage(buildResponse(invite, 503, undefined, { toTag: 'srv9' }))
  const a = parseMessage(buildAck(invite, resp))
  t.equal(a.method, 'ACK')
  t.equal(a.via.branch, invite.via.branch)
  t.equal(a.toTag, 'srv9')
  t.same(a.cseq, { seq: 314159, method: 'ACK' })
  validateRequest(a)
})

t.test('buildOptions and token generators', async (t) => {
  const b = newBranch()
  const o = parseMessage(buildOptions({ uri: 'sip:127.0.1.7:5060', viaTransport: 'udp', viaHostport: '127.0.0.1:5060',
    branch: b, from: '<sip:ping@127.0.0.1>', callId: newCallId('127.0.0.1'), cseq: 5 }))
  t.equal(o.method, 'OPTIONS')
  t.equal(o.via.branch, b)
  t.equal(o.via.transport, 'UDP')
  t.equal(o.via.rport, true)
  t.ok(o.fromTag)
  t.equal(o.cseq.seq, 5)
  t.equal(o.maxForwards, 70)
  validateRequest(o)
  t.ok(b.startsWith('z9hG4bK'))
  const seen = new Set<string>()
  for (let i = 0; i < 1000; i++) seen.add(newBranch())
  t.equal(seen.size, 1000)
  t.not(newTag(), newTag())
  t.match(newCallId('h'), /@h$/)
  t.equal(reasonPhrase(404), 'Not Found')
  t.equal(reasonPhrase(499), 'Client Error')
})
