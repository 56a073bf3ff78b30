import t from 'tap'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { HepExporter, decodeHep, encodeHepHeader } from '../../src/edge/hep.js'

const INVITE = Buffer.from('INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n')

async function collector() {
  const sock = createSocket('udp4')
  sock.bind(0, '127.0.0.1')
  await once(sock, 'listening')
  const packets: Buffer[] = []
  const waiters: Array<() => void> = []
  sock.on('message', (m) => {
    packets.push(m)
    waiters.shift()?.()
  })
  const next = () => new Promise<Buffer>((resolve) => {
    const n = packets.length
    if (n > 0) return resolve(packets.shift()!)
    waiters.push(() => resolve(packets.shift()!))
  })
  return { sock, port: sock.address().port, next }
}

t.test('a captured UDP message decodes back to its addresses, time, id and bytes', async (t) => {
  const c = await collector()
  let results: boolean[] = []
  const hep = new HepExporter({ address: `udp:127.0.0.1:${c.port}`, id: 2001, password: 'homer', onResult: (ok) => results.push(ok) })
  t.teardown(() => {
    hep.close()
    c.sock.close()
  })
  hep.capture(INVITE, { address: '127.0.0.9', port: 5062 }, { address: '127.0.1.1', port: 5080 }, 'udp', 1_700_000_000_123.456)
  const d = decodeHep(await c.next())
  t.match(d, {
    family: 2, proto: 17, srcIp: '127.0.0.9', dstIp: '127.0.1.1', srcPort: 5062, dstPort: 5080,
    timeSec: 1_700_000_000, protoType: 1, captureId: 2001, authKey: 'homer',
  })
  t.ok(Math.abs(d.timeUsec - 123456) <= 1, `usec ${d.timeUsec}`)
  t.same(d.payload, INVITE, 'payload is the message, byte for byte')
  t.same(results, [true])
  t.equal(hep.sent, 1)

  hep.capture(INVITE, { address: '::ffff:127.0.0.9', port: 1 }, { address: '127.0.1.1', port: 2 }, 'tcp')
  const d2 = decodeHep(await c.next())
  t.match(d2, { family: 2, proto: 6, srcIp: '127.0.0.9' }, 'IPv4-mapped IPv6 is sent as IPv4')
  t.ok(Math.abs(d2.timeSec - Date.now() / 1000) < 5, 'defaults to now')
  results = []
})

t.test('IPv6 addresses and chunk layout', async (t) => {
  const h = encodeHepHeader(INVITE.length, { address: '2001:db8::1', port: 5060 }, { address: '::1', port: 5080 }, 'udp', 1000, 7)
  t.ok(h)
  const d = decodeHep(Buffer.concat([h!, INVITE]))
  t.match(d, { family: 10, srcIp: '2001:db8:0:0:0:0:0:1', dstIp: '0:0:0:0:0:0:0:1', captureId: 7, timeSec: 1, timeUsec: 0 })
  t.equal(d.authKey, undefined)
  const mixed = decodeHep(Buffer.concat([encodeHepHeader(0, { address: '127.0.0.1', port: 1 }, { address: 'fe80::1%eth0', port: 2 }, 'udp', 0, 1)!]))
  t.match(mixed, { family: 10, srcIp: '0:0:0:0:0:ffff:7f00:1', dstIp: 'fe80:0:0:0:0:0:0:1' }, 'mixed families use IPv6 (v4-mapped); zone ids ignored')
  const tail = decodeHep(encodeHepHeader(0, { address: '::ffff:10.1.2.3', port: 1 }, { address: '1:2:3:4:5:6:7:8', port: 2 }, 'udp', 0, 1)!)
  t.equal(tail.srcIp, '0:0:0:0:0:ffff:a01:203', 'dotted IPv4 tail')
  t.equal(tail.dstIp, '1:2:3:4:5:6:7:8')
  // Header bytes: magic, total length, first chunk is {vendor 0, type 1, len 7, AF_INET6}.
  t.equal(h!.toString('latin1', 0, 4), 'HEP3')
  t.equal(h!.readUInt16BE(4), h!.length + INVITE.length)
  t.same([...h!.subarray(6, 13)], [0, 0, 0, 1, 0, 7, 10])
})

t.test('never throws: bad addresses and oversize payloads are dropped and counted', async (t) => {
  for (const bad of ['1.2.3', '1.2.3.256', '01234::', 'a::b::c', '1:2:3:4:5:6:7:8:9', 'host.example', '', '1.2.3.4.5', ':1', '1:']) {
    t.equal(encodeHepHeader(0, { address: bad, port: 1 }, { address: '127.0.0.1', port: 2 }, 'udp', 0, 1), undefined, `"${bad}" rejected`)
  }
  t.equal(encodeHepHeader(65500, { address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }, 'udp', 0, 1), undefined, 'over 64 KiB')
  const results: boolean[] = []
  const hep = new HepExporter({ address: '127.0.0.1:9', id: 1, onResult: (ok) => results.push(ok) })
  t.teardown(() => hep.close())
  hep.capture(INVITE, { address: 'nonsense', port: 1 }, { address: '127.0.0.1', port: 2 }, 'udp')
  t.same(results, [false])
  t.equal(hep.dropped, 1)
  hep.close()
  hep.capture(INVITE, { address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }, 'udp')
  t.equal(results.length, 1, 'after close: ignored')
  t.throws(() => new HepExporter({ address: 'tcp:nowhere', id: 1 }), /not udp:host:port/)
  t.throws(() => decodeHep(Buffer.from('HEP2')), /not HEP3/)
  const good = encodeHepHeader(0, { address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }, 'udp', 0, 1)!
  t.throws(() => decodeHep(good.subarray(0, good.length - 3)), /length/)
})
