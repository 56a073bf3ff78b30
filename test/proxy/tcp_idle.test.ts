// A phone that called over TCP is reachable only over that connection: its Contact port is not listening,
// and behind NAT nothing can connect to it (RFC 3261 §18.2.2, RFC 5626 §3). An idle connection that a dialog
// still routes through must stay open past the idle timeout (configured to 1 s here, 120 s by default) so the
// callee's BYE reaches the caller; once the dialog is over, the idle timeout applies again.
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import { startEdge } from '../helpers/edge.js'
import { answer, inDialog, invite, is, sleep } from '../helpers/scripted.js'
import { rawUdp, type RawUdp } from '../helpers/udp.js'

/** A TCP SIP client on `address`: messages framed by Content-Length, collected as they come. */
async function tcpCaller(t: Parameters<typeof startEdge>[0], address: string, edge: { host: string; port: number }) {
  const socket: Socket = connect({ host: edge.host, port: edge.port, localAddress: address })
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  t.teardown(() => void socket.destroy())
  const received: SipMessage[] = []
  let closed = false
  let pending = Buffer.alloc(0)
  socket.on('close', () => (closed = true))
  socket.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk])
    for (;;) {
      const end = pending.indexOf('\r\n\r\n')
      if (end < 0) return
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(pending.toString('latin1', 0, end))
      const total = end + 4 + Number(cl?.[1] ?? 0)
      if (pending.length < total) return
      received.push(parseMessage(Buffer.from(pending.subarray(0, total))))
      pending = pending.subarray(total)
    }
  })
  const peer = { address, port: socket.localPort!, socket: undefined as never } as unknown as RawUdp
  return {
    peer,
    received,
    get closed() {
      return closed
    },
    send: (text: string) => socket.write(text),
    async next(pred: (m: SipMessage) => boolean, timeoutMs = 2000): Promise<SipMessage> {
      const until = Date.now() + timeoutMs
      for (;;) {
        const m = received.find(pred)
        if (m) return m
        if (Date.now() > until) throw new Error('no matching SIP message over TCP')
        await sleep(20)
      }
    },
  }
}

t.test('an idle TCP connection stays open while its dialog lasts, and closes when the dialog ends', async (t) => {
  const backend = await rawUdp(t, '127.0.27.11')
  const edge = await startEdge(t, '127.0.27.10', {
    backends: [`sip:${backend.address}:${backend.port}`],
    limits: { maxMessageSize: 65535, maxConnections: 100, tcpIdleTimeoutMs: 1000, maxDialogs: 1000, dialogTtlS: 3600, maxTransactions: 1000 },
  })
  const caller = await tcpCaller(t, '127.0.27.20', edge)
  const callId = 'tcp-idle'
  caller.send(invite({ caller: caller.peer, ruri: `sip:100@${edge.target}`, callId, transport: 'TCP' }))
  const inv = await backend.next(is(callId, 'INVITE'))
  answer(backend, inv, 200, { tag: 'callee' })
  const ok = await caller.next(is(callId, 200))
  caller.send(inDialog('ACK', ok, { caller: caller.peer, transport: 'TCP' }))
  await backend.next(is(callId, 'ACK'))

  await sleep(2500) // a quiet call: no SIP either way for longer than the idle timeout
  t.notOk(caller.closed, 'the edge kept the connection open')
  const routes = inv.getHeaders('Record-Route').map((rr) => `Route: ${rr}`)
  backend.send(
    [
      `BYE ${inv.contacts[0]!.uriText} SIP/2.0`,
      `Via: SIP/2.0/UDP ${backend.address}:${backend.port};branch=z9hG4bKbye-tcp-idle;rport`,
      'Max-Forwards: 70',
      `From: ${inv.getHeader('To')};tag=callee`,
      `To: ${inv.getHeader('From')}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 BYE',
      ...routes,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    edge.host,
    edge.port,
  )
  const bye = await caller.next(is(callId, 'BYE'))
  t.equal(bye.method, 'BYE', 'the callee’s BYE reaches the caller over its connection')
  caller.send(
    [
      'SIP/2.0 200 OK',
      ...bye.getHeaders('Via').map((v) => `Via: ${v}`),
      `From: ${bye.getHeader('From')}`,
      `To: ${bye.getHeader('To')}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 BYE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  )
  await backend.next(is(callId, 200))
  await sleep(2500)
  t.ok(caller.closed, 'with the dialog over, the idle timeout closes it')
})
