// A plain-RTP SIP peer over UDP standing in for an Asterisk behind the edge: a registrar (keeps Contact and
// Path of each REGISTER), a UAS that answers INVITEs with an RTP/AVP PCMU answer, a UAC that calls a
// registered contact through its Path, and an RTP socket that echoes every packet to where it came from
// (counting both ways). The SDP it received is kept so tests can check what "the Asterisk" saw.
import { createSocket, type Socket } from 'node:dgram'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import type { Teardownable } from './proc.js'
import { rawUdp, type RawUdp } from './udp.js'

export interface RtpPeer {
  sip: RawUdp
  address: string
  rtpPort: number
  /** RTP packets received and echoed back. */
  rtp: { received: number; sent: number }
  /** SDP bodies the peer received (offers in INVITEs, answers in 200s). */
  sdps: string[]
  /** Contact and Path of the last REGISTER (Path entries as written). */
  registration: { contact: string; path: string[] } | undefined
  /** Calls the registered contact through its Path: returns the dialog once the 200 came and the ACK left. */
  call(user: string): Promise<PeerDialog>
  /** BYE for a dialog the peer answered (from the INVITE it got). */
  byeAnswered(invite: SipMessage): Promise<SipMessage>
}

export interface PeerDialog {
  ok: SipMessage
  bye(): Promise<SipMessage>
}

const CRLF = '\r\n'

export function pcmuSdp(ip: string, port: number): string {
  return ['v=0', `o=peer 1 1 IN IP4 ${ip}`, 's=-', `c=IN IP4 ${ip}`, 't=0 0', `m=audio ${port} RTP/AVP 0 101`,
    'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join(CRLF)
}

export async function startRtpPeer(t: Teardownable, address: string): Promise<RtpPeer> {
  const sip = await rawUdp(t, address)
  const rtpSock = await bound(t, address, 0)
  const rtpPort = rtpSock.address().port
  // RTCP arrives on the next port (rtcp-mux is demuxed toward plain peers); bound so it is not refused.
  await bound(t, address, rtpPort + 1).catch(() => undefined)
  const peer: RtpPeer = {
    sip, address, rtpPort, rtp: { received: 0, sent: 0 }, sdps: [], registration: undefined,
    call: (user) => call(peer, user),
    byeAnswered: (invite) => byeAnswered(peer, invite),
  }
  rtpSock.on('message', (m, r) => {
    peer.rtp.received++
    rtpSock.send(m, r.port, r.address, (err) => { if (!err) peer.rtp.sent++ })
  })
  sip.socket.on('message', (buf, r) => {
    let m: SipMessage
    try { m = parseMessage(buf) } catch { return }
    if (m.isRequest) answer(peer, m, r.address, r.port)
  })
  return peer
}

function bound(t: Teardownable, address: string, port: number): Promise<Socket> {
  const s = createSocket('udp4')
  return new Promise((resolve, reject) => {
    s.once('error', reject)
    s.bind(port, address, () => {
      t.teardown(() => new Promise<void>((done) => s.close(() => done())))
      resolve(s)
    })
  })
}

function copy(m: SipMessage, names: string[]): string[] {
  return names.flatMap((h) => m.getHeaders(h).map((v) => `${h}: ${v}`))
}

/** The peer as a UAS and registrar. */
function answer(peer: RtpPeer, m: SipMessage, host: string, port: number): void {
  if (m.method === 'ACK') return
  const to = `To: ${m.getHeader('To')}${m.toTag === undefined ? ';tag=peer1' : ''}`
  const head = ['Via', 'From', 'Call-ID', 'CSeq', 'Record-Route']
  let extra: string[] = []
  let body = ''
  if (m.method === 'REGISTER') {
    peer.registration = { contact: m.getHeader('Contact') ?? '', path: m.getHeaders('Path') }
    extra = [`Contact: ${m.getHeader('Contact')}`]
  } else if (m.method === 'INVITE') {
    if (m.body.length > 0) peer.sdps.push(m.body.toString())
    body = pcmuSdp(peer.address, peer.rtpPort)
    extra = [`Contact: <sip:peer@${peer.address}:${peer.sip.port}>`, 'Content-Type: application/sdp']
  }
  const text = ['SIP/2.0 200 OK', ...copy(m, head), to, ...extra, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join(CRLF)
  peer.sip.socket.send(Buffer.from(text), port, host)
}

function byeAnswered(peer: RtpPeer, invite: SipMessage): Promise<SipMessage> {
  // The UAS's route set is the Record-Route as received; the remote target the caller's Contact.
  const routes = invite.getHeaders('Record-Route')
  const target = invite.contacts[0]!.uriText
  return sendInDialog(peer, 'BYE', target, routes, `From: ${invite.getHeader('To')};tag=peer1`, `To: ${invite.getHeader('From')}`, invite.callId, 2)
}

async function sendInDialog(peer: RtpPeer, method: string, ruri: string, routes: string[], from: string, to: string, callId: string, cseq: number): Promise<SipMessage> {
  const first = routes.join(', ').split(',')[0]!
  const hop = /sip:(?:[^@>]*@)?([\d.]+):(\d+)/.exec(first)!
  const branch = `z9hG4bKpeer${method}${Date.now()}`
  const text = [`${method} ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP ${peer.address}:${peer.sip.port};branch=${branch};rport`,
    'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, `CSeq: ${cseq} ${method}`, ...routes.map((r) => `Route: ${r}`),
    'Content-Length: 0', '', ''].join(CRLF)
  peer.sip.socket.send(Buffer.from(text), Number(hop[2]), hop[1]!)
  if (method === 'ACK') return undefined as unknown as SipMessage
  return peer.sip.next((m) => !m.isRequest && m.getHeader('Via')?.includes(branch) === true && m.status >= 200, 5000)
}

async function call(peer: RtpPeer, user: string): Promise<PeerDialog> {
  const reg = peer.registration
  if (reg === undefined) throw new Error('nobody registered')
  const contact = /<([^>]+)>/.exec(reg.contact)?.[1] ?? reg.contact
  const callId = `peer-call-${Date.now()}`
  const branch = `z9hG4bKpeerinv${Date.now()}`
  const sdp = pcmuSdp(peer.address, peer.rtpPort)
  const from = `From: <sip:${user}@${peer.address}>;tag=peerc`
  const text = [`INVITE ${contact} SIP/2.0`, `Via: SIP/2.0/UDP ${peer.address}:${peer.sip.port};branch=${branch};rport`,
    'Max-Forwards: 70', from, `To: <${contact}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:${user}@${peer.address}:${peer.sip.port}>`, ...reg.path.map((p) => `Route: ${p}`),
    'Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(sdp)}`, '', sdp].join(CRLF)
  const first = /sip:(?:[^@>]*@)?([\d.]+):(\d+)/.exec(reg.path[0] ?? '')
  if (first === null) throw new Error(`no usable Path in the registration: ${JSON.stringify(reg.path)}`)
  peer.sip.socket.send(Buffer.from(text), Number(first[2]), first[1]!)
  const ok = await peer.sip.next((m) => !m.isRequest && m.callId === callId && m.status >= 200, 30_000)
  if (ok.status >= 300) throw new Error(`call refused: ${ok.status}`)
  if (ok.body.length > 0) peer.sdps.push(ok.body.toString())
  // The UAC's route set is the Record-Route in reverse; the remote target the callee's Contact.
  const routes = ok.getHeaders('Record-Route').join(', ').split(/,\s*(?=<)/).reverse()
  const target = ok.contacts[0]!.uriText
  const to = `To: ${ok.getHeader('To')}`
  await sendInDialog(peer, 'ACK', target, routes, from, to, callId, 1)
  return { ok, bye: () => sendInDialog(peer, 'BYE', target, routes, from, to, callId, 2) }
}
