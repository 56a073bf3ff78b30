import t from 'tap'
import { isConnectionProto, isWebSocketProto, protoOfVia, viaTransport } from '../../src/transport/protos.js'
import type { TransportProto } from '../../src/transport/types.js'

t.test('Via transport names both ways', async (t) => {
  const all: TransportProto[] = ['udp', 'tcp', 'tls', 'ws', 'wss']
  t.same(all.map(viaTransport), ['UDP', 'TCP', 'TLS', 'WS', 'WSS'])
  for (const p of all) t.equal(protoOfVia(viaTransport(p)), p)
  t.equal(protoOfVia('wss'), 'wss', 'case-insensitive')
  t.equal(protoOfVia('SCTP'), undefined)
  t.same(all.filter(isConnectionProto), ['tcp', 'tls', 'ws', 'wss'])
  t.same(all.filter(isWebSocketProto), ['ws', 'wss'])
})
