import { createSocket, type Socket } from 'node:dgram'
import { parseMessage, type SipMessage } from '../../src/sip/index.js'
import type { Teardownable } from './proc.js'

/** A raw UDP SIP endpoint for tests that need exact bytes: send text, collect parsed replies. */
export interface RawUdp {
  socket: Socket
  address: string
  port: number
  received: SipMessage[]
  send(text: string, host: string, port: number): void
  /** Waits for the next message matching `pred` (received before or after the call). */
  next(pred?: (m: SipMessage) => boolean, timeoutMs?: number): Promise<SipMessage>
}

export async function rawUdp(t: Teardownable, address: string, port = 0): Promise<RawUdp> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, address, () => resolve())
  })
  t.teardown(() => new Promise<void>((r) => socket.close(() => r())))
  const received: SipMessage[] = []
  const waiters: Array<{ pred: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }> = []
  let consumed = 0
  socket.on('message', (buf) => {
    let m: SipMessage
    try {
      m = parseMessage(buf)
    } catch {
      return
    }
    received.push(m)
    for (let i = 0; i < waiters.length; i++) {
      if (waiters[i]!.pred(m)) {
        waiters.splice(i, 1)[0]!.resolve(m)
        return
      }
    }
  })
  return {
    socket,
    address,
    port: socket.address().port,
    received,
    send(text, host, p) {
      socket.send(Buffer.from(text.replace(/\r?\n/g, '\r\n')), p, host)
    },
    next(pred = () => true, timeoutMs = 3000) {
      for (let i = consumed; i < received.length; i++) {
        if (pred(received[i]!)) {
          consumed = i + 1
          return Promise.resolve(received[i]!)
        }
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no matching SIP message within ' + timeoutMs + ' ms')), timeoutMs)
        waiters.push({
          pred,
          resolve: (m) => {
            clearTimeout(timer)
            consumed = received.length
            resolve(m)
          },
        })
      })
    },
  }
}

/** A SIP request as text with the usual mandatory headers filled in; `lines` are added as they are. */
export function request(o: {
  method: string
  ruri: string
  from: { host: string; port: number }
  callId: string
  cseq?: number
  toTag?: string
  lines?: string[]
  branch?: string
}): string {
  const via = `SIP/2.0/UDP ${o.from.host}:${o.from.port};branch=${o.branch ?? 'z9hG4bK' + Math.random().toString(36).slice(2)};rport`
  return [
    `${o.method} ${o.ruri} SIP/2.0`,
    `Via: ${via}`,
    'Max-Forwards: 70',
    `From: <sip:alice@${o.from.host}>;tag=a1`,
    `To: <sip:bob@example.com>${o.toTag ? ';tag=' + o.toTag : ''}`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq ?? 1} ${o.method}`,
    `Contact: <sip:alice@${o.from.host}:${o.from.port}>`,
    ...(o.lines ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n')
}
