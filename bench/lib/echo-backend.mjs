// A tiny UDP stand-in for the Asterisk pool: 200 (with SDP) to INVITE, ACK absorbed, 200 to BYE and
// to anything else (OPTIONS probes). Runs as its own process so its CPU is not the driver's:
//   node bench/lib/echo-backend.mjs 127.0.1.1:5080 127.0.1.2:5080
// With an IPC channel it answers {type:'counts'} with what it received.
import dgram from 'node:dgram'
import { parseSip, header, SDP } from './sipmsg.mjs'

const counts = { INVITE: 0, ACK: 0, BYE: 0, other: 0, bad: 0 }

function answer(msg, status, reason, contact, withSdp) {
  let out = `SIP/2.0 ${status} ${reason}\r\n`
  for (const [n, v] of msg.headers) {
    if (n === 'via') out += `Via: ${v}\r\n`
    else if (n === 'record-route') out += `Record-Route: ${v}\r\n`
    else if (n === 'from') out += `From: ${v}\r\n`
    else if (n === 'call-id') out += `Call-ID: ${v}\r\n`
    else if (n === 'cseq') out += `CSeq: ${v}\r\n`
    else if (n === 'to') out += `To: ${v}${v.includes(';tag=') ? '' : ';tag=be' + (header(msg, 'call-id') ?? '').length}\r\n`
  }
  out += `Contact: <${contact}>\r\n`
  out += withSdp ? `Content-Type: application/sdp\r\nContent-Length: ${SDP.length}\r\n\r\n${SDP}` : 'Content-Length: 0\r\n\r\n'
  return Buffer.from(out, 'latin1')
}

export function startEchoBackends(addrs) {
  return Promise.all(addrs.map((hp) => new Promise((resolve, reject) => {
    const [ip, port] = hp.split(':')
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 })
    const contact = `sip:asterisk@${ip}:${port}`
    sock.on('message', (buf, rinfo) => {
      let msg
      try { msg = parseSip(buf) } catch { counts.bad++; return }
      if (msg.isResponse) return
      let reply = null
      if (msg.method === 'INVITE') { counts.INVITE++; reply = answer(msg, 200, 'OK', contact, true) }
      else if (msg.method === 'ACK') { counts.ACK++; return }
      else if (msg.method === 'BYE') { counts.BYE++; reply = answer(msg, 200, 'OK', contact, false) }
      else { counts.other++; reply = answer(msg, 200, 'OK', contact, false) }
      sock.send(reply, rinfo.port, rinfo.address)
    })
    sock.once('error', reject)
    sock.bind(Number(port), ip, () => resolve(sock))
  })))
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await startEchoBackends(process.argv.slice(2))
  process.on('message', (m) => { if (m?.type === 'counts') process.send?.({ type: 'counts', counts }) })
  process.send?.({ type: 'ready' })
}
