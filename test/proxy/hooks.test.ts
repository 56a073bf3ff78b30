// Hooks for custom SBCs: onRequest edits apply to every failover attempt, rejects answer without forwarding,
// selectBackend overrides the algorithm, onResponse sees answers, onDialogEnd sees the end of each call.
import t from 'tap'
import { StandInBackend } from '../../src/edge/standin.js'
import { runCaller } from '../../src/edge/caller.js'
import { startEdge } from '../helpers/edge.js'
import { rawUdp } from '../helpers/udp.js'

t.test('onRequest edits reach the backend tried after a failover', async (t) => {
  const busy = new StandInBackend({ host: '127.0.11.11', port: 0, failWith: 503 })
  await busy.start()
  t.teardown(() => busy.stop())
  const recorder = await rawUdp(t, '127.0.11.12')
  const { host, port } = await startEdge(t, '127.0.11.1', {
    backends: [`sip:${busy.id}`, `sip:${recorder.address}:${recorder.port}`],
    failover: { maxTries: 2, inviteTimeoutMs: 300, codes: [503] },
    hooks: {
      onRequest(ctx) {
        ctx.edit.removeHeaders('X-Internal-Debug')
        ctx.edit.appendHeader('X-Sbc', 'seen')
      },
    },
  })
  const caller = await rawUdp(t, '127.0.11.2')
  caller.send(
    `INVITE sip:100@${host}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bKhk1;rport\r\nMax-Forwards: 70\r\n` +
      `From: <sip:a@${caller.address}>;tag=1\r\nTo: <sip:100@${host}>\r\nCall-ID: hook-failover\r\nCSeq: 1 INVITE\r\n` +
      `X-Internal-Debug: secret\r\nContact: <sip:a@${caller.address}:${caller.port}>\r\nContent-Length: 0\r\n\r\n`,
    host,
    port,
  )
  const invite = await recorder.next((m) => m.method === 'INVITE')
  t.equal(busy.calls, 1, 'the first backend answered 503')
  t.equal(invite.getHeader('X-Internal-Debug'), undefined, 'the header the hook removed stays removed on the second attempt')
  t.equal(invite.getHeader('X-Sbc'), 'seen', 'the header the hook added is there, once')
  t.equal(invite.getHeaders('X-Sbc').length, 1)
  t.equal(invite.vias.length, 2, 'our Via and the caller\'s')
})

t.test('reject, selectBackend, onResponse and onDialogEnd', async (t) => {
  const a = new StandInBackend({ host: '127.0.11.21', port: 0 })
  const b = new StandInBackend({ host: '127.0.11.22', port: 0 })
  await a.start()
  await b.start()
  t.teardown(async () => {
    await a.stop()
    await b.stop()
  })
  const responses: number[] = []
  const ended: string[] = []
  const { host, port } = await startEdge(t, '127.0.11.3', {
    backends: [`sip:${a.id}`, `sip:${b.id}`],
    hooks: {
      onRequest(ctx) {
        if (ctx.msg.from.uri.host === '127.0.11.9') ctx.reject = { status: 403, reason: 'Blocked' }
      },
      selectBackend: (_set, _msg, candidates) => candidates.find((c) => c.target.host === '127.0.11.22'),
      onResponse: (ctx) => void responses.push(ctx.msg.status),
      onDialogEnd: (d, reason) => void ended.push(`${d.backend?.target.host} ${reason}`),
    },
  })
  const r = await runCaller({ edge: { host, port }, host: '127.0.11.4', calls: 5, rate: 50 })
  t.equal(r.completed, 5)
  t.equal(b.calls, 5, 'selectBackend chose the second backend for every call')
  t.equal(a.calls, 0)
  t.ok(responses.includes(180) && responses.includes(200), 'onResponse saw the answers')
  t.same(ended, Array(5).fill('127.0.11.22 bye'), 'onDialogEnd for each call')
  const blocked = await runCaller({ edge: { host, port }, host: '127.0.11.9', calls: 2, rate: 50 })
  t.equal(blocked.failed, 2, 'calls from the blocked source are rejected')
  t.match(blocked.failures[0] ?? '', /INVITE answered 403/)
})
