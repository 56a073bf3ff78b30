import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseMessage, validateRequest, validateResponse, SipParseError, type SipMessage } from '../../src/sip/index.js'
import { throwsStatus } from './fixtures/throws.js'



const dir = new URL('../corpus/rfc4475/', import.meta.url)
const rows = readFileSync(new URL('INDEX.tsv', dir), 'utf8').split('\n')
  .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('name\t'))
  .map((l) => l.split('\t') as [string, string, string, string])

// Valid messages that a proxy must still answer with an error status (RFC 4475 §3.3).
const HIGHER_LAYER: Record<string, number> = {
  unkscm: 416, // unknown Request-URI scheme
  novelsc: 416, // soap.beep: §3.3.3 allows 416 from an element that never accepts the scheme
  bext01: 420, // Proxy-Require: noProxiesSupportThis
  zeromf: 483, // Max-Forwards: 0
}
const INVALID_STATUS: Record<string, number> = { badvers: 505 }

function touchAll(m: SipMessage): void {
  void m.callId; void m.cseq; void m.from.uri; void m.to.uri; void m.vias; void m.maxForwards
  void m.routes; void m.recordRoutes; for (const c of m.contacts) void c.uri; void m.body
  void m.topViaBranch; void m.fromTag; void m.toTag
  for (let i = 0; i < m.headerCount; i++) void m.headerValue(i)
  if (m.isRequest) void m.uri
}
function check(m: SipMessage): void {
  if (m.isRequest) validateRequest(m)
  else validateResponse(m)
}

t.equal(rows.length, 50, 'all 50 corpus messages are listed')

for (const [name, expected] of rows) {
  t.test(`${name} (${expected})`, async (t) => {
    const buf = readFileSync(new URL(name + '.sip', dir))
    if (expected === 'valid') {
      const m = parseMessage(buf)
      const status = HIGHER_LAYER[name]
      if (status === undefined) {
        t.doesNotThrow(() => check(m), 'validate passes')
        t.doesNotThrow(() => touchAll(m), 'every accessor works')
      } else {
        throwsStatus(t, () => check(m), status, `a higher layer answers ${status}`)
      }
    } else {
      let err: unknown
      try {
        const m = parseMessage(buf)
        check(m)
        touchAll(m)
      } catch (e) {
        err = e
      }
      t.ok(err instanceof SipParseError, 'rejected with SipParseError: ' + String(err))
      t.equal((err as SipParseError).status, INVALID_STATUS[name] ?? 400)
    }
  })
}

t.test('specific corpus facts', async (t) => {
  const read = (n: string) => readFileSync(new URL(n + '.sip', dir))
  const dbl = parseMessage(read('dblreq'))
  t.equal(dbl.method, 'REGISTER')
  t.equal(dbl.body.length, 0, 'the trailing INVITE is ignored')
  const mp = parseMessage(read('mpart01'))
  t.equal(mp.body.length, 553)
  const lr = parseMessage(read('longreq'))
  t.equal(lr.vias.length, 34)
  const inv = parseMessage(read('inv2543'))
  t.equal(inv.contentLength, undefined)
  t.ok(inv.body.length > 0, 'body runs to the end of the datagram')
  t.equal(parseMessage(read('unreason')).reason, '= 2**3 * 5**2 но сто девяносто девять - простое', 'UTF-8 reason')
  t.equal(parseMessage(read('noreason')).reason, '')
  const ws = parseMessage(read('wsinv'))
  t.equal(ws.getHeader('Subject'), '')
  t.equal(ws.from.displayName, 'J Rosenberg \\"', 'quoted-pairs resolved')
  t.equal(ws.from.tag, '98asjd8', 'folded header params')
  t.equal(ws.toTag, '1918181833n')
  t.equal(ws.fromTag, '98asjd8')
  t.equal(parseMessage(read('esc01')).from.uri.user, 'I have spaces')
  const semi = parseMessage(read('semiuri'))
  t.equal(semi.uri.user, 'user;par=u@example.net')
  t.same(parseMessage(read('transports')).vias.map((v) => v.transport), ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP'])
  t.equal(parseMessage(read('transports')).callId, 'transports.kijh4akdnaqjkwendsasfdj')
  const cp1 = parseMessage(read('cparam01'))
  t.equal(cp1.contacts[0]!.params['unknownparam'], true, 'header param without <>')
  const cp2 = parseMessage(read('cparam02'))
  t.equal(cp2.contacts[0]!.uri.params['unknownparam'], true, 'URI param inside <>')
  t.ok(Object.keys(parseMessage(read('regescrt')).contacts[0]!.uri.headers).length > 0)
  // baddn: even with its missing empty line added, the unquoted comma is rejected
  const fixed = Buffer.concat([read('baddn'), Buffer.from('\r\n')])
  throwsStatus(t, () => check(parseMessage(fixed)), 400)
  t.equal(parseMessage(read('lwsdisp')).from.displayName, 'caller')
  t.equal(parseMessage(read('badbranch')).via.branch, 'z9hG4bK')
})
