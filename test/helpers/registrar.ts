// A registrar stand-in on a raw UDP peer, as Asterisk with support_path=yes behaves toward the edge: it stores
// the Path of each REGISTER and answers 200 with it and the Contact (none for an un-REGISTER), or 401 first
// when asked to challenge (the re-sent REGISTER with credentials then gets the 200).
import { buildResponse, newTag, parseMessage, type SipMessage } from '../../src/sip/index.js'
import type { RawUdp } from './udp.js'

/** Starts answering REGISTERs on `peer`; returns the REGISTERs seen, in order. */
export function pathRegistrar(peer: RawUdp, o: { challenge?: boolean } = {}): SipMessage[] {
  const seen: SipMessage[] = []
  peer.socket.on('message', (buf, rinfo) => {
    let m: SipMessage
    try { m = parseMessage(buf) } catch { return }
    if (!m.isRequest || m.method !== 'REGISTER') return
    seen.push(m)
    const headers: Array<[string, string]> = []
    let status = 200
    if (o.challenge && m.getHeader('Authorization') === undefined) {
      status = 401
      headers.push(['WWW-Authenticate', 'Digest realm="pbx", nonce="n1", algorithm=MD5'])
    } else {
      for (const p of m.getHeaders('Path')) headers.push(['Path', p])
      const c = m.contacts[0]
      if (c && m.getHeader('Expires') !== '0') headers.push(['Contact', `<${c.uriText}>;expires=60`])
    }
    peer.socket.send(buildResponse(m, status, undefined, { toTag: newTag(), headers }), rinfo.port, rinfo.address)
  })
  return seen
}
