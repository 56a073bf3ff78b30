import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { createServer, type Server } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Dispatcher } from '../../src/dispatch/dispatcher.js'
import { Prober } from '../../src/dispatch/prober.js'
import type { Backend } from '../../src/dispatch/backend.js'

type Mode = 'ok' | 'silent' | '503' | '408' | '404' | 'trying-then-ok' | 'slow'

/** Builds a response to `req` that echoes Via/From/To/Call-ID/CSeq, as a UAS does. */
function answer(req: string, status: number, reason: string): Buffer {
  const keep = req.split('\r\n').filter((l) => /^(via|from|to|call-id|cseq)\s*:/i.test(l))
  return Buffer.from(`SIP/2.0 ${status} ${reason}\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`)
}

interface Responder { sock: Socket; port: number; mode: Mode; seen: number }

/** A stand-in Asterisk on 127.0.1.x that answers OPTIONS per its current mode. */
async function udpResponder(t: { teardown(fn: () => unknown): void }, host: string, mode: Mode): Promise<Responder> {
  const sock = createSocket('udp4')
  await new Promise<void>((resolve) => sock.bind(0, host, resolve))
  const r: Responder = { sock, port: sock.address().port, mode, seen: 0 }
  sock.on('message', (msg, rinfo) => {
    r.seen++
    const req = msg.toString('latin1')
    const send = (status: number, reason: string) => sock.send(answer(req, status, reason), rinfo.port, rinfo.address)
    switch (r.mode) {
      case 'ok': return send(200, 'OK')
      case '503': return send(503, 'Service Unavailable')
      case '408': return send(408, 'Request Timeout')
      case '404': return send(404, 'Not Found')
      case 'trying-then-ok': send(100, 'Trying'); return void setTimeout(() => send(200, 'OK'), 10)
      case 'slow': return void setTimeout(() => send(200, 'OK'), 60)
      default: return
    }
  })
  t.teardown(() => new Promise<void>((resolve) => sock.close(() => resolve())))
  return r
}

function backend(d: Dispatcher, n: number, port: number, proto = 'udp'): Backend {
  return d.upsert({ id: `b${n}`, set: 'pbx', uri: `sip:127.0.1.${n}:${port};transport=${proto}`, weight: 1,
    priority: 0, admin: 'active', source: 'static' })
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

t.test('probeNow: outcomes per answer and thresholds both ways', async (t) => {
  const d = new Dispatcher()
  const prober = new Prober(d, { timeoutMs: 150, failThreshold: 3, okThreshold: 2, localAddress: '127.0.0.9' })
  t.teardown(() => prober.stop())
  const r = await udpResponder(t, '127.0.1.1', 'ok')
  const b = backend(d, 1, r.port)
  t.equal(await prober.probeNow(b), 'up')
  t.equal(b.health, 'probing', 'one good answer is not yet up')
  t.equal(await prober.probeNow(b), 'up')
  t.equal(b.health, 'up')
  r.mode = '503'
  t.equal(await prober.probeNow(b), 'down')
  t.equal(b.health, 'probing', 'suspect after one failure, still eligible')
  r.mode = 'silent'
  const t0 = Date.now()
  t.equal(await prober.probeNow(b), 'down')
  t.ok(Date.now() - t0 >= 140, 'silence is a failure after the timeout')
  r.mode = '408'
  t.equal(await prober.probeNow(b), 'down', 'a 408 is never a good answer')
  t.equal(b.health, 'down')
  r.mode = '404'
  t.equal(await prober.probeNow(b), 'up', 'a 404 still proves it is alive')
  t.equal(b.health, 'down')
  r.mode = 'trying-then-ok'
  t.equal(await prober.probeNow(b), 'up', 'waits past the 100 for the final answer')
  t.equal(b.health, 'up')
  t.equal(r.seen, 7)
})

t.test('running prober: UDP backends go down after N failures, up after M successes', async (t) => {
  const d = new Dispatcher()
  const changes: string[] = []
  d.onChange = (b, what) => { if (what === 'health') changes.push(`${b.id}:${b.health}`) }
  const ok = await udpResponder(t, '127.0.1.1', 'ok')
  const silent = await udpResponder(t, '127.0.1.2', 'silent')
  const busy = await udpResponder(t, '127.0.1.3', '503')
  const [b1, b2, b3] = [backend(d, 1, ok.port), backend(d, 2, silent.port), backend(d, 3, busy.port)]
  const prober = new Prober(d, { intervalMs: 20, timeoutMs: 50, failThreshold: 3, okThreshold: 2 })
  t.teardown(() => prober.stop())
  await prober.start()
  await until(() => b1!.health === 'up' && b2!.health === 'down' && b3!.health === 'down', 'initial health')
  t.ok(silent.seen >= 3 && busy.seen >= 3, 'three probes before down')
  t.equal(d.select('pbx', { callId: 'x', fromUser: '' }), b1, 'only the healthy one is selected')
  busy.mode = 'ok'
  silent.mode = 'ok'
  await until(() => b2!.health === 'up' && b3!.health === 'up', 'recovery')
  ok.mode = 'silent'
  await until(() => b1!.health === 'down', 'b1 down')
  t.same(changes.filter((c) => c.startsWith('b1')), ['b1:up', 'b1:probing', 'b1:down'])
  t.same(changes.filter((c) => c.startsWith('b3')), ['b3:down', 'b3:up'])
  // One probe per address at a time: a silent backend with timeout > interval is not flooded.
  const before = ok.seen
  await sleep(200)
  t.ok(ok.seen - before <= 200 / 50 + 1, `no overlapping probes (${ok.seen - before} in 200ms)`)
})

t.test('reload and removal do not reset health nor race an in-flight probe', async (t) => {
  const d = new Dispatcher({ okThreshold: 1 })
  const r = await udpResponder(t, '127.0.1.4', 'slow')
  const prober = new Prober(d, { timeoutMs: 500 })
  t.teardown(() => prober.stop())
  const b = backend(d, 4, r.port)
  const inFlight = prober.probeNow(b)
  await until(() => r.seen === 1, 'probe sent')
  d.remove('b4')
  t.equal(await inFlight, 'up')
  t.equal(b.health, 'probing', 'reply for a removed backend is ignored')
  t.equal(b.okStreak, 0)
  const again = backend(d, 4, r.port)
  t.equal(again, b, 're-added: same backend')
  const second = prober.probeNow(b)
  await until(() => r.seen === 2, 'probe sent')
  backend(d, 4, r.port) // a reload while the probe is out
  await second
  t.equal(b.health, 'up', 'the answer lands on the reloaded backend')
  backend(d, 4, r.port)
  t.equal(b.health, 'up', 'reload keeps health')
})

t.test('disabled backends are not probed; draining ones are', async (t) => {
  const d = new Dispatcher()
  const r1 = await udpResponder(t, '127.0.1.5', 'ok')
  const r2 = await udpResponder(t, '127.0.1.6', 'ok')
  backend(d, 5, r1.port)
  backend(d, 6, r2.port)
  d.setAdmin('b5', 'disabled')
  d.setAdmin('b6', 'draining')
  const prober = new Prober(d, { intervalMs: 20, timeoutMs: 50 })
  t.teardown(() => prober.stop())
  await prober.start()
  await until(() => r2.seen >= 3, 'probes')
  t.equal(r1.seen, 0)
})

t.test('TCP: a probe per connection; refused is a failure at once', async (t) => {
  const server: Server = createServer((c) => {
    let buf = ''
    c.on('data', (chunk) => {
      buf += chunk.toString('latin1')
      if (buf.includes('\r\n\r\n')) c.write(answer(buf, 200, 'OK'))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.1.7', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as { port: number }).port
  const d = new Dispatcher()
  const prober = new Prober(d, { timeoutMs: 1000, okThreshold: 1, failThreshold: 1 })
  t.teardown(() => prober.stop())
  const b = backend(d, 7, port, 'tcp')
  t.equal(await prober.probeNow(b), 'up')
  t.equal(b.health, 'up')
  const closed = backend(d, 8, 1, 'tcp') // nothing listens on 127.0.1.8:1
  const t0 = Date.now()
  t.equal(await prober.probeNow(closed), 'down')
  t.ok(Date.now() - t0 < 500, 'refused without waiting for the timeout')
  t.equal(closed.health, 'down')
})

t.test('stop settles probes in flight without counting them', async (t) => {
  const d = new Dispatcher()
  const r = await udpResponder(t, '127.0.1.10', 'silent')
  const prober = new Prober(d, { timeoutMs: 5000 })
  const b = backend(d, 10, r.port)
  const p = prober.probeNow(b)
  await until(() => r.seen === 1, 'probe sent')
  await prober.stop()
  t.equal(await p, 'down')
  t.equal(b.failStreak, 0)
})
