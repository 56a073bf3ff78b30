// 3xx from a backend reach the caller usable (RFC 3261 §8.1.3.4, §16.7 step 4 "a proxy MAY recurse [...] or
// forward the 3xx", §21.3): the edge relays the redirect with every Contact. "The Contact header field values
// of the response [...] each represent an alternative destination": an external target is kept as it is, an
// internal one becomes an edge alias that the edge opens again, so that the caller's new INVITE to it
// reaches that container (Asterisk's Transfer() on a ringing channel answers 302 to an extension elsewhere).
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { answer, namesAny } from '../helpers/flow.js'
import { freePort } from '../helpers/net.js'
import { rawUdp } from '../helpers/udp.js'

const PUBLIC = '127.0.73.1'
const INTERNAL = '127.0.73.9'
const INTERNAL_NET = ['127.0.73.9', '127.0.73.11', '127.0.73.13']

t.test('a 302 with an internal and an external Contact: both kept, the internal one aliased and followable', async (t) => {
  const b1 = await rawUdp(t, '127.0.73.11') // the backend the call is dispatched to
  const other = await rawUdp(t, '127.0.73.13') // another container on the internal network, not in the set
  const caller = await rawUdp(t, '127.0.73.30')
  const port = await freePort(PUBLIC)
  await startEdge(
    t,
    PUBLIC,
    {
      listen: [`udp:${PUBLIC}:${port}`],
      internalListen: [`udp:${INTERNAL}:${port}`],
      backends: [`sip:${b1.address}:${b1.port}`],
      trustedNetworks: ['127.0.73.8/29'],
    },
    port,
  )
  const invite = (ruri: string, cseq: number, branch: string): string =>
    `INVITE ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=${branch};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:alice@${caller.address}>;tag=al1\r\nTo: <sip:100@${PUBLIC}>\r\nCall-ID: redirect-1\r\n` +
    `CSeq: ${cseq} INVITE\r\nContact: <sip:alice@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`
  caller.send(invite(`sip:100@${PUBLIC}:${port}`, 1, 'z9hG4bKr1'), PUBLIC, port)
  const inv = await b1.next((m) => m.method === 'INVITE')

  const internalTarget = `sip:200@127.0.73.13:${other.port}`
  const externalTarget = 'sip:+15550199@127.0.73.60:5060'
  answer(b1, inv, 302, { host: INTERNAL, port }, {
    headers: [['Contact', `<${internalTarget}>;q=0.9, "Voicemail" <${externalTarget}>;q=0.5`]],
  })
  const redirect = await caller.next((m) => m.status === 302)
  const contacts = redirect.contacts
  t.equal(contacts.length, 2, 'both Contacts reach the caller')
  t.equal(contacts[1]?.uriText, externalTarget, 'the external target is kept as it is')
  t.equal(contacts[1]?.displayName, 'Voicemail', 'with its display name')
  t.equal(contacts[0]?.uri.host, PUBLIC, 'the internal target is an edge alias')
  t.equal(contacts[0]?.uri.user, '200', 'that keeps the user part')
  t.equal(contacts[0]?.params['q'], '0.9', 'and the q value')
  t.same(namesAny([redirect], INTERNAL_NET), [], 'no internal address in the redirect')
  t.ok(b1.received.some((m) => m.method === 'ACK'), 'the edge ACKed the 302 on its branch')

  // RFC 3261 §8.1.3.4: the caller tries the first target with a new INVITE (same Call-ID, new CSeq).
  caller.send(invite(contacts[0]!.uriText, 2, 'z9hG4bKr2'), PUBLIC, port)
  const followed = await other.next((m) => m.method === 'INVITE', 2000).catch(() => undefined)
  t.ok(followed, 'the new INVITE reached the internal redirect target')
  t.equal(followed?.requestUri, internalTarget, 'with the original target as Request-URI')
  t.notOk(b1.received.some((m) => m.method === 'INVITE' && m.cseq.seq === 2), 'not dispatched by the set\'s algorithm')
})
