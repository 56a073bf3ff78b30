// bench/sipp/uas.xml (the stand-in Asterisk backend) against a scripted caller over UDP, no proxy in between:
// an INVITE retransmission (same Via branch) that reaches it after its 200, before or after the ACK, is
// absorbed as a real UAS absorbs it (RFC 3261 17.2.1, RFC 6026) and the call still ends with a 200 to its BYE.
// A proxy sends one when its timer A fires before it has read the 100/200 waiting in its socket (a stalled
// worker), or when the 200 crosses the retransmission. SIPp's own retransmission detection only remembers the
// 100 Trying, so before the scenario's optional INVITE recvs it aborted the call and ignored the BYE.
import t, { type Test } from 'tap'
import type { SipMessage } from '../../src/sip/index.js'
import { describe, sippAvailable, startUas, type SippResult, type SippUas } from '../helpers/sipp.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

const PHONE = '127.0.0.90'

type When = 'after-200' | 'after-ack' | 'both'

interface Outcome {
  byeAnswer?: SipMessage
  /** 200s to the INVITE received in all. */
  invite200s: number
  uas: SippResult
  uasId: string
}

interface Dialing {
  uas: SippUas
  phone: RawUdp
  callId: string
  invite: string
  req(method: string, cseq: number, branch: string, toTag?: string, body?: string): string
  send(text: string): void
  isAnswer(method: string, status: number): (m: SipMessage) => boolean
}

/** A UAS running `scenario` and a scripted caller that has sent it an INVITE. */
async function dial(t: Test, scenario: string, uasIp: string, tag: string, durationMs?: number): Promise<Dialing> {
  const uas = await startUas({ scenario, ip: uasIp, t, durationMs })
  const phone = await rawUdp(t, PHONE)
  const callId = `uas-retrans-${tag}@${PHONE}`
  const target = `sip:service@${uas.id}`
  const sdp = ['v=0', `o=- 1 1 IN IP4 ${PHONE}`, 's=-', `c=IN IP4 ${PHONE}`, 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n')
  const req = (method: string, cseq: number, branch: string, toTag?: string, body = ''): string => [
    `${method} ${target} SIP/2.0`,
    `Via: SIP/2.0/UDP ${PHONE}:${phone.port};branch=${branch}`,
    ...(method === 'INVITE' && !toTag ? [`Record-Route: <sip:${PHONE}:${phone.port};lr>`] : []),
    'Max-Forwards: 70',
    `From: <sip:caller@${PHONE}>;tag=caller1`,
    `To: <${target}>${toTag ? `;tag=${toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method}`,
    `Contact: <sip:caller@${PHONE}:${phone.port}>`,
    ...(method === 'REFER' ? [`Refer-To: <sip:transfer@${PHONE}>`, `Referred-By: <sip:caller@${PHONE}>`] : []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n')
  const send = (text: string): void => phone.send(text, uas.ip, uas.port)
  const isAnswer = (method: string, status: number) => (m: SipMessage): boolean =>
    !m.isRequest && m.callId === callId && m.cseq.method === method && m.status === status
  const invite = req('INVITE', 1, 'z9hG4bK-uas-retrans-1', undefined, sdp)
  send(invite)
  return { uas, phone, callId, invite, req, send, isAnswer }
}

/** One call: INVITE, then the same INVITE again `when`, ACK, BYE. `otherBranch`: the second INVITE has a new branch. */
async function call(t: Test, uasIp: string, when: When, otherBranch = false): Promise<Outcome> {
  const { uas, phone, invite, req, send, isAnswer } = await dial(t, 'uas', uasIp, `${when}-${otherBranch ? 'merged' : 'same'}`)
  const again = otherBranch ? invite.replace('z9hG4bK-uas-retrans-1', 'z9hG4bK-uas-retrans-2') : invite
  const ok = await phone.next(isAnswer('INVITE', 200), 5000)
  const toTag = ok.toTag!
  if (when !== 'after-ack') {
    send(again)
    // Give SIPp the time to take it before the ACK (a retransmission crossing our 200 on the wire).
    await sleep(200)
  }
  send(req('ACK', 1, 'z9hG4bK-uas-retrans-ack', toTag))
  if (when !== 'after-200') {
    await sleep(100)
    send(again)
    await sleep(100)
  }
  send(req('BYE', 2, 'z9hG4bK-uas-retrans-bye', toTag))
  let byeAnswer: SipMessage | undefined
  try {
    byeAnswer = await phone.next(isAnswer('BYE', 200), otherBranch ? 1500 : 5000)
  } catch {
    byeAnswer = undefined
  }
  const invite200s = phone.received.filter(isAnswer('INVITE', 200)).length
  return { byeAnswer, invite200s, uas: await uas.stop(), uasId: uas.id }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

if (!sippAvailable()) {
  t.fail('sipp is not installed (apt-get install sip-tester)')
} else {
  let host = 90
  for (const when of ['after-200', 'after-ack', 'both'] as const) {
    t.test(`uas.xml absorbs a retransmitted INVITE ${when === 'both' ? 'after the 200 and again after the ACK' : when.replace('-', ' the ')}: the BYE is answered`, async (t) => {
      const r = await call(t, `127.0.1.${host++}`, when)
      t.ok(r.byeAnswer, `200 to the BYE (${describe(r.uas)})`)
      t.equal(r.byeAnswer?.getHeader('X-Backend'), r.uasId, 'X-Backend on the 200 to the BYE')
      t.ok(r.invite200s >= 1, `the INVITE answered 200 (${r.invite200s} received)`)
      t.equal(r.uas.successful, 1, 'the UAS counts the call successful')
      t.equal(r.uas.failed, 0, 'no failed call on the UAS')
    })
  }

  // Not a retransmission: the same Call-ID with a new branch (e.g. a caller's retransmission relayed again by a
  // restarted proxy worker). The scenario keeps SIPp's old answer to it: the call fails and ends silently.
  t.test('another branch of the same Call-ID is not absorbed: the call ends as before', async (t) => {
    const r = await call(t, `127.0.1.${host++}`, 'after-ack', true)
    t.notOk(r.byeAnswer, 'BYE unanswered: the call was ended by the merged INVITE')
    t.equal(r.uas.successful, 0)
    t.equal(r.uas.failed, 1, 'counted failed on the UAS')
  })

  // The other callee scenarios that answer an INVITE with 200 absorb it the same way before the ACK (and
  // uas_refer.xml after it too): the dialog's next step still happens. With the old scenarios it did not.
  const nextStep: Array<{ scenario: string; durationMs?: number; what: string; step: (d: Dialing, toTag: string) => Promise<SipMessage> }> = [
    { scenario: 'uas_bye', durationMs: 100, what: 'the callee\'s BYE', step: (d) => d.phone.next((m) => m.isRequest && m.method === 'BYE' && m.callId === d.callId, 5000) },
    { scenario: 'uas_reinvite_callee', durationMs: 100, what: 'the callee\'s re-INVITE', step: (d) => d.phone.next((m) => m.isRequest && m.method === 'INVITE' && m.callId === d.callId, 5000) },
    { scenario: 'uas_reinvite', what: '200 to the caller\'s re-INVITE', step: (d, toTag) => {
      d.send(d.req('INVITE', 2, 'z9hG4bK-uas-retrans-re', toTag))
      return d.phone.next((m) => d.isAnswer('INVITE', 200)(m) && m.cseq.seq === 2, 5000)
    } },
    { scenario: 'uas_refer', what: '202 to the caller\'s REFER', step: (d, toTag) => {
      d.send(d.req('REFER', 2, 'z9hG4bK-uas-retrans-refer', toTag))
      return d.phone.next(d.isAnswer('REFER', 202), 5000)
    } },
  ]
  for (const n of nextStep) {
    t.test(`${n.scenario}.xml absorbs a retransmitted INVITE before the ACK: ${n.what} follows`, async (t) => {
      const d = await dial(t, n.scenario, `127.0.1.${host++}`, n.scenario, n.durationMs)
      const toTag = (await d.phone.next(d.isAnswer('INVITE', 200), 5000)).toTag!
      d.send(d.invite)
      await sleep(200)
      d.send(d.req('ACK', 1, 'z9hG4bK-uas-retrans-ack', toTag))
      if (n.scenario === 'uas_refer') {
        await sleep(100)
        d.send(d.invite)
        await sleep(100)
      }
      const m = await n.step(d, toTag).catch(() => undefined)
      t.ok(m, `${n.what} (UAS in ${d.uas.dir})`)
    })
  }
}
