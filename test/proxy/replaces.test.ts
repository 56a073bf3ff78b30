// RFC 3891 (Replaces) through an edge that masks the Call-IDs of calls placed by backends (`maskCallId`).
// The public side only ever sees the masked Call-ID; when it names that dialog in `Replaces:` or in
// `Refer-To: <...?Replaces=...>` (attended transfer, call pickup), the backend must get its own Call-ID back,
// or it answers 481. "The UAS [...] MUST look for a matching dialog" (§3): so the INVITE must also reach the
// backend that holds the replaced dialog, not whichever the set's algorithm picks. Going out, a Call-ID of a
// backend-created dialog inside Replaces is masked like the dialog's own Call-ID.
import t from 'tap'
import type { SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { answer, inDialog, recordRoutes } from '../helpers/flow.js'
import { freePort } from '../helpers/net.js'
import type { Teardownable } from '../helpers/proc.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

const PUBLIC = '127.0.74.1'
const INTERNAL = '127.0.74.9'

async function setup(t: Teardownable) {
  const b1 = await rawUdp(t, '127.0.74.11')
  const b2 = await rawUdp(t, '127.0.74.12')
  const carrier = await rawUdp(t, '127.0.74.50')
  const port = await freePort(PUBLIC)
  await startEdge(
    t,
    PUBLIC,
    {
      listen: [`udp:${PUBLIC}:${port}`],
      internalListen: [`udp:${INTERNAL}:${port}`],
      backends: [`sip:${b1.address}:${b1.port}`, `sip:${b2.address}:${b2.port}`],
      algorithm: 'round-robin',
      trunk: `sip:${carrier.address}:${carrier.port}`,
      maskCallId: true,
    },
    port,
  )
  /** `b` calls out through the edge; the carrier answers. Returns what each side saw. */
  const outbound = async (b: RawUdp, callId: string, fromTag: string, toTag: string) => {
    b.send(
      `INVITE sip:+15550123@${carrier.address} SIP/2.0\r\nVia: SIP/2.0/UDP ${b.address}:${b.port};branch=z9hG4bK${fromTag};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:100@${b.address}>;tag=${fromTag}\r\nTo: <sip:+15550123@${carrier.address}>\r\n` +
        `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:100@${b.address}:${b.port}>\r\nContent-Length: 0\r\n\r\n`,
      INTERNAL,
      port,
    )
    const inv = await carrier.next((m) => m.method === 'INVITE' && m.fromTag === fromTag)
    answer(carrier, inv, 200, { host: PUBLIC, port }, {
      toTag,
      headers: [['Record-Route', inv.getHeader('Record-Route')!], ['Contact', `<sip:callee@${carrier.address}:${carrier.port}>`]],
    })
    const ok = await b.next((m) => m.status === 200 && m.callId === callId)
    return { masked: inv.callId, ok, inv }
  }
  return { b1, b2, carrier, port, outbound }
}

t.test('an INVITE with Replaces naming a masked Call-ID goes to the backend holding that dialog, unmasked', async (t) => {
  const { b1, b2, port, outbound } = await setup(t)
  // b2 (the second backend, so that round-robin would pick b1 first) places a call; the carrier sees it masked.
  const { masked } = await outbound(b2, 'ast2-call@127.0.74.12', 'ast2tag', 'callee1')
  t.ok(masked.startsWith('se1.'), 'the public side knows the call by its masked Call-ID')

  // A phone on the public side picks that call up (RFC 3891 §3): a new INVITE replacing it.
  const phone = await rawUdp(t, '127.0.74.31')
  phone.send(
    `INVITE sip:100@${PUBLIC}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${phone.address}:${phone.port};branch=z9hG4bKpick;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:bob@${phone.address}>;tag=bob1\r\nTo: <sip:100@${PUBLIC}>\r\nCall-ID: pickup-1\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:bob@${phone.address}:${phone.port}>\r\nReplaces: ${masked};to-tag=callee1;from-tag=ast2tag\r\n` +
      'Content-Length: 0\r\n\r\n',
    PUBLIC,
    port,
  )
  const isPickup = (m: SipMessage): boolean => m.method === 'INVITE' && m.callId === 'pickup-1'
  const got = await Promise.any([b1.next(isPickup, 2000).then((m) => ({ at: 'b1', m })), b2.next(isPickup, 2000).then((m) => ({ at: 'b2', m }))])
  t.equal(got.at, 'b2', 'dispatched to the backend that holds the replaced dialog')
  t.equal(got.m.getHeader('Replaces'), 'ast2-call@127.0.74.12;to-tag=callee1;from-tag=ast2tag', 'with the backend\'s own Call-ID in Replaces')
})

t.test('Refer-To ?Replaces= carries the masked Call-ID: restored going in, masked going out (URI-escaped)', async (t) => {
  const { b1, b2, carrier, port, outbound } = await setup(t)
  const first = await outbound(b2, 'ast2-a@127.0.74.12', 'tagA', 'calleeA')
  const second = await outbound(b2, 'ast2-b@127.0.74.12', 'tagB', 'calleeB')

  // Going in: the carrier (transferor) refers within the first call, replacing the second (attended transfer).
  const referIn = `<sip:+15550123@${carrier.address}?Replaces=${second.masked}%3Bto-tag%3DcalleeB%3Bfrom-tag%3DtagB>`
  carrier.send(
    inDialog({
      method: 'REFER',
      ruri: first.inv.contacts[0]!.uriText, // the backend's Contact, as the edge's alias
      via: { host: carrier.address, port: carrier.port, branch: 'z9hG4bKreferin' },
      route: recordRoutes(first.inv), // the UAS keeps Record-Route in order (§12.1.1)
      from: `<sip:+15550123@${carrier.address}>;tag=calleeA`,
      to: `<sip:100@${PUBLIC}>;tag=tagA`,
      callId: first.masked,
      cseq: 1,
      lines: [`Refer-To: ${referIn}`, `Contact: <sip:callee@${carrier.address}:${carrier.port}>`],
    }),
    PUBLIC,
    port,
  )
  const referAtBackend = await b2.next((m) => m.method === 'REFER')
  t.equal(referAtBackend.callId, 'ast2-a@127.0.74.12', 'the REFER itself is unmasked')
  t.equal(
    referAtBackend.getHeader('Refer-To'),
    `<sip:+15550123@${carrier.address}?Replaces=ast2-b%40127.0.74.12%3Bto-tag%3DcalleeB%3Bfrom-tag%3DtagB>`,
    'the Call-ID inside Refer-To is the backend\'s own, escaped',
  )
  t.equal(b1.received.filter((m) => m.method === 'REFER').length, 0, 'only the dialog\'s backend got it')

  // Going out: the backend refers the carrier within the first call to replace the second one.
  b2.send(
    inDialog({
      method: 'REFER',
      ruri: first.ok.contacts[0]!.uriText,
      via: { host: b2.address, port: b2.port, branch: 'z9hG4bKreferout' },
      route: recordRoutes(first.ok).reverse(),
      from: `<sip:100@${b2.address}>;tag=tagA`,
      to: first.ok.getHeader('To')!,
      callId: 'ast2-a@127.0.74.12',
      cseq: 2,
      lines: [
        `Refer-To: <sip:+15550124@${carrier.address}?Replaces=ast2-b%40127.0.74.12%3Bto-tag%3DcalleeB%3Bfrom-tag%3DtagB>`,
        `Contact: <sip:100@${b2.address}:${b2.port}>`,
      ],
    }),
    INTERNAL,
    port,
  )
  const referOut = await carrier.next((m) => m.method === 'REFER')
  t.equal(referOut.callId, first.masked, 'the REFER goes out with its dialog\'s masked Call-ID')
  t.equal(
    referOut.getHeader('Refer-To'),
    `<sip:+15550124@${carrier.address}?Replaces=${second.masked}%3Bto-tag%3DcalleeB%3Bfrom-tag%3DtagB>`,
    'and the replaced dialog is named by the Call-ID the carrier knows',
  )

  // An INVITE with a Replaces header from the backend is masked the same way.
  b2.send(
    `INVITE sip:+15550125@${carrier.address} SIP/2.0\r\nVia: SIP/2.0/UDP ${b2.address}:${b2.port};branch=z9hG4bKrepl;rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:100@${b2.address}>;tag=tagC\r\nTo: <sip:+15550125@${carrier.address}>\r\nCall-ID: ast2-c\r\n` +
      `CSeq: 1 INVITE\r\nContact: <sip:100@${b2.address}:${b2.port}>\r\nReplaces: ast2-b@127.0.74.12;to-tag=calleeB;from-tag=tagB\r\n` +
      'Content-Length: 0\r\n\r\n',
    INTERNAL,
    port,
  )
  const replOut = await carrier.next((m) => m.method === 'INVITE' && m.fromTag === 'tagC')
  t.equal(replOut.getHeader('Replaces'), `${second.masked};to-tag=calleeB;from-tag=tagB`, 'Replaces names the masked Call-ID')
})
