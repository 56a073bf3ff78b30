// RFC 3263 resolution against a real DNS server (dnsmasq in the test's network namespace).
import t from 'tap'
import { NextHopResolver, hopName } from '../../src/dns/index.js'
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
