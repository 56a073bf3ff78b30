// Synthetic UAC side for blast/dialogs: N UDP sockets on 127.0.0.(10+i) sending INVITE through the
// proxy, ACK on 200, then either BYE at once (blast: complete calls) or hold the dialog (dialogs).
// No retransmissions: a call without an answer within timeoutMs is counted lost and dropped.
import dgram from 'node:dgram'
import { parseSip, cseqMethod, header, buildInvite, buildInDialog, dialogFrom200 } from './sipmsg.mjs'

export class UacDriver {
  /**
   * @param {{ target: string, clients?: number, holdDialogs?: boolean, timeoutMs?: number,
   *           onDone?: (kind: 'completed'|'established'|'lost'|'byeDone'|'byeLost') => void }} o
   */
  constructor(o) {
    const [host, port] = o.target.split(':')
    this.host = host
    this.port = Number(port)
    this.target = o.target
    this.nClients = o.clients ?? 8
    this.hold = !!o.holdDialogs
    this.timeoutMs = o.timeoutMs ?? 2000
    this.onDone = o.onDone ?? (() => {})
    this.socks = []
    this.calls = new Map()
    this.held = [] // established dialogs, BYE'd from the end
    this.seq = 0
    this.run = Math.random().toString(36).slice(2, 8)
    this.counts = { invites: 0, provisional: 0, ok: 0, errors: 0, established: 0, completed: 0, lost: 0, byeDone: 0, byeLost: 0, stray: 0 }
  }

  async open() {
    for (let i = 0; i < this.nClients; i++) {
      const ip = `127.0.0.${10 + i}`
      const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 })
      await new Promise((res, rej) => { s.once('error', rej); s.bind(0, ip, res) })
      const local = `${ip}:${s.address().port}`
      s.on('message', (buf) => this.onMessage(buf))
      this.socks.push({ s, local })
    }
  }

  send(sockIdx, buf) {
    this.socks[sockIdx].s.send(buf, this.port, this.host)
  }

  startCall() {
    const n = ++this.seq
    const sockIdx = n % this.socks.length
    const callId = `${this.run}-${n}@bench`
    const call = { sockIdx, callId, fromTag: `f${n}`, state: 'inviting', t0: Date.now(), dialog: null }
    this.calls.set(callId, call)
    this.counts.invites++
    this.send(sockIdx, buildInvite({ target: this.target, local: this.socks[sockIdx].local, callId, branch: `${this.run}i${n}`, fromTag: call.fromTag }))
  }

  inDialog(call, method, cseq) {
    const local = this.socks[call.sockIdx].local
    this.send(call.sockIdx, buildInDialog(method, cseq, { dialog: call.dialog, local, callId: call.callId, branch: `${this.run}${method[0]}${++this.seq}`, fromTag: call.fromTag }))
  }

  onMessage(buf) {
    let msg
    try { msg = parseSip(buf) } catch { this.counts.stray++; return }
    if (!msg.isResponse) { this.counts.stray++; return }
    const call = this.calls.get(header(msg, 'call-id') ?? '')
    if (!call) { this.counts.stray++; return }
    if (msg.status < 200) { this.counts.provisional++; return }
    const method = cseqMethod(msg)
    if (msg.status >= 300) {
      this.counts.errors++
      this.calls.delete(call.callId)
      this.onDone('lost')
      return
    }
    this.counts.ok++
    if (method === 'INVITE') {
      if (call.state !== 'inviting') { this.inDialog(call, 'ACK', 1); return } // retransmitted 200: re-ACK
      call.dialog = dialogFrom200(msg)
      this.inDialog(call, 'ACK', 1)
      if (this.hold) {
        call.state = 'established'
        this.counts.established++
        this.held.push(call)
        this.onDone('established')
      } else {
        call.state = 'byeing'
        call.t0 = Date.now()
        this.inDialog(call, 'BYE', 2)
      }
    } else if (method === 'BYE' && call.state === 'byeing') {
      this.calls.delete(call.callId)
      if (this.hold) { this.counts.byeDone++; this.onDone('byeDone') } else { this.counts.completed++; this.onDone('completed') }
    }
  }

  /** BYE one held dialog; false when none is left. */
  byeOne() {
    const call = this.held.pop()
    if (!call) return false
    call.state = 'byeing'
    call.t0 = Date.now()
    this.inDialog(call, 'BYE', 2)
    return true
  }

  /** Drop calls waiting longer than timeoutMs (counted lost). */
  sweep(now = Date.now()) {
    for (const call of this.calls.values()) {
      if (call.state === 'established' || now - call.t0 < this.timeoutMs) continue
      this.calls.delete(call.callId)
      const kind = this.hold && call.state === 'byeing' ? 'byeLost' : 'lost'
      this.counts[kind]++
      this.onDone(kind)
    }
  }

  pending() {
    let n = 0
    for (const c of this.calls.values()) if (c.state !== 'established') n++
    return n
  }

  close() {
    for (const { s } of this.socks) s.close()
    this.socks = []
  }
}
