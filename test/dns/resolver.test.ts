// RFC 3263 resolution against a real DNS server (dnsmasq in the test's network namespace).
import t from 'tap'
import { NextHopResolver, hopName } from '../../src/dns/index.js'
import { orderTargets } from '../../src/dns/order.js'
import { startDnsmasq } from '../helpers/dnsmasq.js'

const UDP_TCP = new Set(['udp', 'tcp'] as const)

t.test('NAPTR → SRV → A: the transport comes from the NAPTR service, targets by SRV priority', async (t) => {
  const dns = await startDnsmasq(t, '127.0.139.53', {
    naptr: [
      ['carrier.test', 10, 50, 's', 'SIP+D2T', '_sip._tcp.carrier.test'],
      ['carrier.test', 20, 50, 's', 'SIP+D2U', '_sip._udp.carrier.test'],
    ],
    srv: [
      ['_sip._tcp.carrier.test', 'b.carrier.test', 5071, 20, 0],
      ['_sip._tcp.carrier.test', 'a.carrier.test', 5070, 10, 0],
      ['_sip._udp.carrier.test', 'a.carrier.test', 5090, 10, 0],
    ],
    a: [['a.carrier.test', '127.0.2.1'], ['b.carrier.test', '127.0.2.2']],
    ttlS: 30,
  })
  const r = new NextHopResolver({ servers: [dns.server], transports: UDP_TCP })
  t.teardown(() => r.stop())
  const peers = await r.resolve(hopName('carrier.test', undefined, undefined, false))
  t.same(peers, [
    { proto: 'tcp', address: '127.0.2.1', port: 5070 },
    { proto: 'tcp', address: '127.0.2.2', port: 5071 },
  ])
  // Cached: answered without waiting.
  t.same(r.lookup(hopName('carrier.test', undefined, undefined, false)), peers)
  // Without TCP on the edge, the SIP+D2U record is the one it can use (RFC 3263 §4.1).
  const udpOnly = new NextHopResolver({ servers: [dns.server], transports: new Set(['udp']) })
  t.teardown(() => udpOnly.stop())
  t.same(await udpOnly.resolve(hopName('carrier.test', undefined, undefined, false)), [{ proto: 'udp', address: '127.0.2.1', port: 5090 }])
  // A URI with a port: A only (§4.2), UDP.
  t.same(await r.resolve(hopName('b.carrier.test', 5999, undefined, false)), [{ proto: 'udp', address: '127.0.2.2', port: 5999 }])
  // With ;transport=tcp and no port: SRV _sip._tcp only.
  t.same((await r.resolve(hopName('carrier.test', undefined, 'tcp', false)))?.[0], { proto: 'tcp', address: '127.0.2.1', port: 5070 })
  // No such name.
  t.equal(await r.resolve(hopName('nowhere.test', undefined, undefined, false)), null)
})

t.test('SRV alone (no NAPTR), and A alone (neither): port 5060 over UDP', async (t) => {
  const dns = await startDnsmasq(t, '127.0.139.54', {
    srv: [['_sip._tcp.srvonly.test', 'x.srvonly.test', 5080, 10, 0]],
    a: [['x.srvonly.test', '127.0.2.7'], ['aonly.test', '127.0.2.8'], ['aonly.test', '127.0.2.9']],
    ttlS: 30,
  })
  const r = new NextHopResolver({ servers: [dns.server], transports: UDP_TCP })
  t.teardown(() => r.stop())
  t.same(await r.resolve(hopName('srvonly.test', undefined, undefined, false)), [{ proto: 'tcp', address: '127.0.2.7', port: 5080 }], 'no NAPTR: SRV per transport, UDP then TCP')
  // dnsmasq rotates the A records of a name: compare them as a set.
  const sorted = (peers: Array<{ address: string }> | null) => [...(peers ?? [])].sort((a, b) => a.address.localeCompare(b.address))
  t.same(sorted(await r.resolve(hopName('aonly.test', undefined, undefined, false))), [
    { proto: 'udp', address: '127.0.2.8', port: 5060 },
    { proto: 'udp', address: '127.0.2.9', port: 5060 },
  ], 'no NAPTR, no SRV: every A record, port 5060')
  t.same(sorted(await r.resolve(hopName('AOnly.test.', 5070, 'tcp', false))), [
    { proto: 'tcp', address: '127.0.2.8', port: 5070 },
    { proto: 'tcp', address: '127.0.2.9', port: 5070 },
  ], 'a port: A only, the transport of the URI; names are case-insensitive, a trailing dot is the same name')
})

t.test('RFC 2782 draw: priority first, weight-0 targets last but not never, demoted targets after the rest', async (t) => {
  const p = (port: number) => ({ proto: 'udp' as const, address: '127.0.2.1', port })
  const targets = [
    { priority: 10, weight: 0, peers: [p(1)] },
    { priority: 10, weight: 3, peers: [p(2)] },
    { priority: 10, weight: 1, peers: [p(3)] },
    { priority: 20, weight: 5, peers: [p(4)] },
  ]
  const firsts = new Map<number, number>()
  let seed = 1
  const rand = (): number => ((seed = (seed * 48271) % 2147483647) / 2147483647)
  let priority20Last = 0
  for (let i = 0; i < 4000; i++) {
    const order = orderTargets(targets, rand)
    if (order.length === 4 && order[3]!.port === 4) priority20Last++
    firsts.set(order[0]!.port, (firsts.get(order[0]!.port) ?? 0) + 1)
  }
  t.equal(priority20Last, 4000, 'every target once, priority 20 always last')
  // Running sums over [w0, w3, w1] with a draw in 0..4: weight 0 wins 1/5, weight 3 wins 3/5, weight 1 wins 1/5.
  t.ok(Math.abs(firsts.get(2)! / 4000 - 0.6) < 0.04, `weight 3 first ${firsts.get(2)} / 4000`)
  t.ok(Math.abs(firsts.get(3)! / 4000 - 0.2) < 0.04, `weight 1 first ${firsts.get(3)} / 4000`)
  t.ok(Math.abs(firsts.get(1)! / 4000 - 0.2) < 0.04, `weight 0 first ${firsts.get(1)} / 4000 (RFC 2782 puts it first in the sum)`)
  const demoted = orderTargets(targets, rand, (peer) => peer.port === 2)
  t.equal(demoted[demoted.length - 1]!.port, 2, 'a demoted target goes after every other, lower priority ones too')
})
