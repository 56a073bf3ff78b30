import t from 'tap'
import { createMetrics } from '../../src/edge/metrics.js'
import { DIR_IN, DIR_OUT, EdgeStats, METHODS, SIDE_INTERNAL, SIDE_PUBLIC, methodIndex, sideIndex } from '../../src/edge/stats.js'

t.test('stats: slots by side x direction x method / status class', async (t) => {
  const s = new EdgeStats()
  s.request(SIDE_PUBLIC, DIR_IN, 'INVITE')
  s.request(SIDE_PUBLIC, DIR_IN, 'INVITE')
  s.request(SIDE_INTERNAL, DIR_OUT, 'FOO')
  s.requestIdx(SIDE_INTERNAL, DIR_IN, methodIndex('BYE'))
  s.response(SIDE_PUBLIC, DIR_OUT, 180)
  s.response(SIDE_PUBLIC, DIR_OUT, 200)
  s.response(SIDE_PUBLIC, DIR_OUT, 99) // not a status: ignored
  s.response(SIDE_PUBLIC, DIR_OUT, 700)
  t.equal(s.requests(SIDE_PUBLIC, DIR_IN, methodIndex('INVITE')), 2)
  t.equal(s.requests(SIDE_INTERNAL, DIR_OUT, METHODS.indexOf('OTHER')), 1)
  t.equal(s.requests(SIDE_INTERNAL, DIR_IN, 2), 1)
  t.equal(s.responses(SIDE_PUBLIC, DIR_OUT, 0), 1)
  t.equal(s.responses(SIDE_PUBLIC, DIR_OUT, 1), 1)
  t.equal(s.slots.reduce((a, b) => a + b, 0), 6, 'nothing else counted')
  for (const m of METHODS) if (m !== 'OTHER') t.equal(METHODS[methodIndex(m)], m)
  t.equal(sideIndex('internal'), SIDE_INTERNAL)
  s.setupTime(5)
  s.setupTime(80)
  s.setupTime(80)
  s.setupTime(90000)
  s.setupTime(NaN)
  const h = s.setupHistogram()
  t.equal(h.count, 4)
  t.equal(h.sumMs, 90165)
  t.equal(h.cumulative[0], 1, '<= 10ms')
  t.equal(h.cumulative[3], 3, '<= 100ms')
  t.equal(h.cumulative.at(-1), 4, '+Inf')
  t.equal(s.setupPercentileMs(50), 100)
  t.equal(s.setupPercentileMs(99), Infinity)
  s.reset()
  t.equal(s.setupHistogram().count, 0)
})

t.test('metrics text: names, HELP, labels and values read at scrape time', async (t) => {
  const s = new EdgeStats()
  const m = createMetrics(s, {}, { defaultMetrics: false })
  t.match(m.contentType, /^text\/plain; version=0\.0\.4/)
  s.request(SIDE_PUBLIC, DIR_IN, 'INVITE')
  s.response(SIDE_INTERNAL, DIR_IN, 503)
  s.parseError(SIDE_PUBLIC)
  s.rateLimited(SIDE_PUBLIC)
  s.denied(SIDE_INTERNAL)
  s.sendError(SIDE_INTERNAL)
  s.localReply(503)
  s.relayRefused()
  s.failover()
  s.failover()
  s.callStarted()
  s.callAnswered()
  s.callFailed()
  s.callEnded()
  s.retransmission()
  s.probe(true)
  s.probe(false)
  s.hep(true)
  s.hep(false)
  s.setupTime(120)
  let text = await m.metrics()
  const expect = [
    'sipedge_requests_total{side="public",direction="in",method="INVITE"} 1',
    'sipedge_responses_total{side="internal",direction="in",class="5xx"} 1',
    'sipedge_parse_errors_total{side="public"} 1',
    'sipedge_parse_errors_total{side="internal"} 0',
    'sipedge_rate_limited_total{side="public"} 1',
    'sipedge_denied_total{side="internal"} 1',
    'sipedge_send_errors_total{side="internal"} 1',
    'sipedge_local_replies_total{class="5xx"} 1',
    'sipedge_relay_refused_total 1',
    'sipedge_failovers_total 2',
    'sipedge_calls_total{outcome="started"} 1',
    'sipedge_calls_total{outcome="ended"} 1',
    'sipedge_retransmissions_absorbed_total 1',
    'sipedge_probes_total{result="fail"} 1',
    'sipedge_hep_packets_total{result="dropped"} 1',
    'sipedge_call_setup_seconds_bucket{le="0.1"} 0',
    'sipedge_call_setup_seconds_bucket{le="0.25"} 1',
    'sipedge_call_setup_seconds_bucket{le="+Inf"} 1',
    'sipedge_call_setup_seconds_sum 0.12',
    'sipedge_call_setup_seconds_count 1',
    '# TYPE sipedge_call_setup_seconds histogram',
    '# TYPE sipedge_failovers_total counter',
    '# HELP sipedge_failovers_total INVITEs retried on another backend',
    'sipedge_info{version="',
  ]
  for (const line of expect) t.ok(text.includes(line), line)
  t.notMatch(text, /^sipedge_calls_active /m, 'no source, no sample')
  t.notOk(text.includes('process_cpu'), 'default metrics off on request')

  s.failover()
  m.setSources({
    callsActive: () => 7,
    callsPerBackend: () => [{ id: 'sip:127.0.1.1:5080', set: 'default', calls: 4 }],
    backends: () => [
      { id: 'sip:127.0.1.1:5080', set: 'default', health: 'up', admin: 'active' },
      { id: 'sip:127.0.1.2:5080', set: 'default', health: 'down', admin: 'draining' },
    ],
    transactions: () => 12,
    dialogs: () => 9,
    tcpConnections: () => 3,
    etcdState: () => 'disconnected',
  })
  text = await m.metrics()
  for (const line of [
    'sipedge_failovers_total 3',
    'sipedge_calls_active 7',
    'sipedge_backend_calls{backend="sip:127.0.1.1:5080",set="default"} 4',
    'sipedge_backend_health{backend="sip:127.0.1.2:5080",set="default",state="down"} 1',
    'sipedge_backend_health{backend="sip:127.0.1.2:5080",set="default",state="up"} 0',
    'sipedge_backend_admin{backend="sip:127.0.1.2:5080",set="default",state="draining"} 1',
    'sipedge_backend_up{backend="sip:127.0.1.1:5080",set="default"} 1',
    'sipedge_backend_up{backend="sip:127.0.1.2:5080",set="default"} 0',
    'sipedge_transactions 12',
    'sipedge_dialogs 9',
    'sipedge_tcp_connections 3',
    'sipedge_etcd_state{state="disconnected"} 1',
    'sipedge_etcd_state{state="connected"} 0',
  ]) t.ok(text.includes(line), line)
  // Every sample line belongs to a metric with HELP and TYPE.
  for (const l of text.split('\n')) {
    if (l === '' || l.startsWith('#')) continue
    const name = l.split(/[{ ]/)[0]!.replace(/_(bucket|sum|count)$/, '')
    t.ok(text.includes(`# HELP ${name} `) || text.includes(`# HELP ${name}_`), `HELP for ${name}`)
  }
})

t.test('default process metrics are included by default', async (t) => {
  const m = createMetrics(new EdgeStats())
  const text = await m.metrics()
  t.ok(text.includes('process_cpu_user_seconds_total'))
  t.ok(text.includes('nodejs_eventloop_lag_seconds'))
})
