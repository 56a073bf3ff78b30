// The worker marks that decide which process owns a message: the worker in a branch, the worker in the first
// Route, and the loopback hand-over format. What test/edge/workers.test.ts relies on, one rule at a time.
import t from 'tap'
import { newBranch, parseMessage, setWorkerTokens, workerOfBranch } from '../../src/sip/index.js'
import { recordRoute, setRouteWorker } from '../../src/proxy/routing.js'
import { routeWorker } from '../../src/edge/workers/worker.js'
import { unwrap, unwrapFlow, wrap, wrapFlow } from '../../src/edge/workers/relay.js'
import type { Listener } from '../../src/transport/types.js'

t.test('a branch names the worker that made it; anyone else\'s branch names none', async (t) => {
  t.equal(workerOfBranch('z9hG4bK1a2b.w12~Qx_9-zz1'), 12, 'loop-hash branch of worker 12')
  t.equal(workerOfBranch('z9hG4bKw3~AbC'), 3, 'plain branch of worker 3')
  t.equal(workerOfBranch('z9hG4bK-13993-279-0'), -1, 'a SIPp branch')
  t.equal(workerOfBranch('z9hG4bKfoo~bar'), -1, 'a foreign ~ without w<digits>')
  t.equal(workerOfBranch('z9hG4bK.w~x'), -1, 'w without a number')
  setWorkerTokens(7)
  t.equal(workerOfBranch(newBranch()), 7, 'after setWorkerTokens(7) every new branch names 7')
})

t.test('the first Route names the worker holding the dialog', async (t) => {
  const listener = { hostport: '127.0.0.1:5060', spec: { proto: 'udp' } } as unknown as Listener
  setRouteWorker(1)
  const rr = recordRoute(listener, 'TOKEN')
  t.equal(rr, '<sip:127.0.0.1:5060;lr;sw=1;sk=TOKEN>')
  const bye = (route: string) =>
    parseMessage(Buffer.from(
      `BYE sip:bob@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx\r\n${route}From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n` +
        'Call-ID: c1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n',
    ))
  t.equal(routeWorker(bye(`Route: ${rr}\r\n`)), 1)
  t.equal(routeWorker(bye(`Route: <sip:127.0.0.1:5060;lr;SW=12;sk=T>, <sip:192.0.2.1;lr>\r\n`)), 12, 'case-insensitive name, first entry')
  t.equal(routeWorker(bye('Route: <sip:192.0.2.1;lr>, <sip:127.0.0.1;lr;sw=1>\r\n')), -1, 'only the first entry counts')
  t.equal(routeWorker(bye('Route: <sip:192.0.2.1;lr>;sw=1\r\n')), -1, 'a header parameter is not the URI\'s')
  t.equal(routeWorker(bye('')), -1, 'no Route')
})

t.test('a hand-over carries the listener, the source (transport, address, port) and the bytes as received', async (t) => {
  const sip = Buffer.from('xxSIP/2.0 200 OK\r\n\r\nyy')
  for (const source of [{ proto: 'udp', address: '203.0.113.9', port: 5060 }, { proto: 'tcp', address: '2001:db8::1', port: 65535 }] as const) {
    const w = wrap(sip, 2, sip.length - 2, 3, source)
    const u = unwrap(w)
    t.same(u && { listenerId: u.listenerId, source: u.source }, { listenerId: 3, source })
    t.equal(u && w.toString('latin1', u.start), 'SIP/2.0 200 OK\r\n\r\n')
    t.equal(unwrapFlow(w), undefined, 'not taken for a flow message')
  }
  const f = wrapFlow('tcp:198.51.100.7:40123', Buffer.from('BYE ...'))
  const uf = unwrapFlow(f)
  t.equal(uf?.key, 'tcp:198.51.100.7:40123')
  t.equal(uf && f.toString('latin1', uf.start), 'BYE ...')
  t.equal(unwrap(f), undefined, 'not taken for a response hand-over')
  t.equal(unwrap(Buffer.from([1, 2])), undefined, 'a truncated datagram is refused')
})
