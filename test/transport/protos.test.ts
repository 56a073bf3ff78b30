import t from 'tap'
import { isConnectionProto, isWebSocketProto, protoOfUri, protoOfVia, uriTransportParam, viaTransport } from '../../src/transport/protos.js'
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

t.test('URI transport parameters both ways', async (t) => {
  t.same((['udp', 'tcp', 'tls', 'ws', 'wss'] as const).map(uriTransportParam), ['', ';transport=tcp', ';transport=tls', ';transport=ws', ';transport=ws'])
  t.equal(protoOfUri(undefined, false), 'udp')
  t.equal(protoOfUri(undefined, true), 'tls', 'sips: defaults to TLS')
  t.equal(protoOfUri('TCP', false), 'tcp')
  t.equal(protoOfUri('tcp', true), 'tls', 'sips with transport=tcp is TLS')
  t.equal(protoOfUri('tls', false), 'tls')
  t.equal(protoOfUri('ws', false), 'ws')
  t.equal(protoOfUri('ws', true), 'wss')
  t.equal(protoOfUri('sctp', false), 'udp', 'unknown transports fall back to the scheme default')
  t.equal(protoOfUri(true, false), 'udp', 'a valueless parameter is ignored')
})
