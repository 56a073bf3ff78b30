// The `sipedge` binary anchoring media from its own config (`--media-rtpengine`, `--media-mode anchor`), with a
// real rtpengine and SIPp at both ends: the caller plays g711a.pcap, the backend echoes it (-rtp_echo). rtpengine
// counts the packets each end sent it; each end only ever saw rtpengine's address for its side.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { NgClient } from '../../src/media/ng_client.js'
import type { BDict } from '../../src/media/bencode.js'
import { startCliEdge } from '../helpers/cli_edge.js'
import { freePort, freeUdpPort, waitFor } from '../helpers/net.js'
import { startRtpengine, type RtpengineHandle } from '../helpers/rtpengine.js'
import { runUac, startUas } from '../helpers/sipp.js'

const EDGE = '127.0.6.1'
const CALLER = '127.0.4.60'
const BACKEND = '127.0.1.60'

const ng = new NgClient({ retransmitMs: 50, timeoutMs: 500 })
t.teardown(() => ng.close())
const target = (e: RtpengineHandle) => ({ host: e.host, port: e.ngPort })

async function admin(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://${EDGE}:${port}${path}`)
  return { status: r.status, body: await r.text() }
}

/** Packets rtpengine received per party of a call (the `query` reply: tags -> medias -> streams). */
function packetsByTag(q: BDict): Array<{ tag: string; packets: number; endpoints: string[] }> {
  const tags = q['tags'] as Record<string, BDict>
  return Object.entries(tags).map(([tag, v]) => {
    let packets = 0
    const endpoints: string[] = []
    for (const m of (v['medias'] as BDict[] | undefined) ?? []) {
      for (const s of (m['streams'] as BDict[] | undefined) ?? []) {
        const stats = s['stats'] as BDict | undefined
        packets += Number(stats?.['packets'] ?? 0)
        const ep = s['endpoint'] as BDict | undefined
        if (ep?.['address'] !== undefined) endpoints.push(String(ep['address']))
      }
    }
    return { tag, packets, endpoints }
  })
}

t.test('sipedge --media-rtpengine: a SIPp call with RTP both ways through rtpengine, never caller to backend directly', async (t) => {
  const eng = await startRtpengine({ t, n: 10 })
  const edgePort = await freeUdpPort(EDGE)
  const adminPort = await freePort(EDGE)
  const uas = await startUas({ t, scenario: 'uas', ip: BACKEND, extra: ['-mi', BACKEND, '-mp', String(await freeUdpPort(BACKEND)), '-rtp_echo'] })
  t.teardown(() => uas.stop(500))
  const edge = await startCliEdge(t, [
    '--listen', `udp:${EDGE}:${edgePort}`, '--backend', `sip:${uas.id}`, '--no-probe', '--admin', `${EDGE}:${adminPort}`,
    '--media-mode', 'anchor', '--media-rtpengine', eng.spec,
  ])
  const started = await edge.waitLog((l) => l.msg === 'media anchoring through rtpengine', 5000)
  t.match(String(started['rtpengine']), eng.spec, 'the log names the rtpengine instance')

  const uac = runUac({
    t, scenario: 'uac_rtp', target: `${EDGE}:${edgePort}`, localIp: CALLER, calls: 1, durationMs: 3000, timeoutS: 20,
    extra: ['-mi', CALLER, '-mp', String(await freeUdpPort(CALLER))],
  })
  const [callId] = await waitFor(async () => { const l = await ng.list(target(eng)); return l.length === 1 ? l : undefined }, { what: 'the call in rtpengine', timeoutMs: 5000 })
  const dialogs = JSON.parse((await admin(adminPort, '/dialogs')).body) as { items: Array<{ callId: string; media?: string; rtpengine?: string }> }
  t.equal(dialogs.items[0]?.rtpengine, eng.spec, '/dialogs names the rtpengine of the call')
  t.match((await admin(adminPort, '/metrics')).body, /sipedge_media_sessions\{instance="[^"]+",address="udp:127\.0\.0\.1:\d+"\} 1/, '/metrics: one anchored session')
  // ~1.5 s of a 3 s call: g711a.pcap sends 33 packets/s.
  await new Promise((r) => setTimeout(r, 1500))
  const byTag = packetsByTag(await ng.query(target(eng), { 'call-id': callId! }))
  t.equal(byTag.length, 2, 'two parties')
  const caller = byTag.find((p) => p.endpoints.includes(CALLER))
  const backend = byTag.find((p) => p.endpoints.includes(BACKEND))
  t.ok(caller && caller.packets >= 20, `caller -> rtpengine (external side): ${caller?.packets} packets`)
  t.ok(backend && backend.packets >= 20, `backend echo -> rtpengine (internal side): ${backend?.packets} packets`)
  const r = await uac
  t.equal(r.successful, 1, 'the call completed')
  await waitFor(async () => (await ng.list(target(eng))).length === 0, { what: 'no session left after the BYE', timeoutMs: 3000 })

  // What each end was told: only rtpengine's address for its side.
  const uacSeen = readFileSync(r.messages!, 'latin1')
  const answer = /SIP\/2\.0 200 OK[\s\S]*?\r?\n\r?\n(v=0[\s\S]*?)(?=\r?\n\r?\n|-{5,}|$)/.exec(uacSeen)?.[1] ?? ''
  t.match(answer, new RegExp(`c=IN IP4 ${eng.external.replace(/\./g, '\\.')}`), 'the caller was given rtpengine\'s external address')
  t.notMatch(uacSeen, /127\.0\.(1|2)\.\d+/, 'no backend or internal rtpengine address reached the caller, in any header or body')
  const uasRun = await uas.stop(500)
  const uasSeen = readFileSync(uasRun.messages!, 'latin1')
  t.match(uasSeen, new RegExp(`c=IN IP4 ${eng.internal.replace(/\./g, '\\.')}`), 'the backend was given rtpengine\'s internal address')
  t.notMatch(uasSeen, new RegExp(`c=IN IP4 ${CALLER.replace(/\./g, '\\.')}`), 'the caller\'s media address never reached the backend')
})

t.test('readiness and SIGHUP: no rtpengine up -> /readyz 503 and calls 503; a new instance list applies on reload', async (t) => {
  const a = await startRtpengine({ t, n: 11 })
  const b = await startRtpengine({ t, n: 12 })
  const edgePort = await freeUdpPort(EDGE)
  const adminPort = await freePort(EDGE)
  const uas = await startUas({ t, scenario: 'uas', ip: BACKEND, extra: ['-mi', BACKEND, '-mp', String(await freeUdpPort(BACKEND))] })
  t.teardown(() => uas.stop(500))
  const file = join(tmpdir(), `sipedge-media-${process.pid}.yaml`)
  t.teardown(() => writeFileSync(file, ''))
  const yaml = (spec: string) => [
    'media:', '  mode: anchor', `  rtpengine: [${spec}]`, '  ping: { intervalMs: 200, timeoutMs: 100, failThreshold: 2, okThreshold: 1 }', '',
  ].join('\n')
  writeFileSync(file, yaml(a.spec))
  const edge = await startCliEdge(t, ['--config', file, '--listen', `udp:${EDGE}:${edgePort}`, '--backend', `sip:${uas.id}`, '--no-probe', '--admin', `${EDGE}:${adminPort}`])
  await waitFor(async () => (await admin(adminPort, '/readyz')).status === 200, { what: 'ready', timeoutMs: 5000 })
  const call = () => runUac({ t, scenario: 'uac', target: `${EDGE}:${edgePort}`, localIp: CALLER, calls: 1, timeoutS: 10 })
  t.equal((await call()).successful, 1, 'a call through rtpengine a')

  a.kill('SIGKILL')
  await edge.waitLog((l) => l.msg === 'rtpengine changed' && l['health'] === 'down', 5000, 'rtpengine down')
  // With --workers (SIPEDGE_TEST_WORKERS) the primary learns it from the worker over IPC, just after that log line.
  const ready = await waitFor(async () => {
    const r = await admin(adminPort, '/readyz')
    return r.status === 503 ? r : undefined
  }, { what: '/readyz 503', timeoutMs: 2000 })
  t.equal(ready.status, 503, '/readyz: not ready')
  t.match(ready.body, /no rtpengine up/)
  const refused = await call()
  t.equal(refused.successful, 0, 'a new call is refused')
  t.match(readFileSync(refused.messages!, 'latin1'), /SIP\/2\.0 503/, 'with 503')

  writeFileSync(file, yaml(b.spec))
  edge.proc.kill('SIGHUP')
  await edge.waitLog((l) => l.msg === 'SIGHUP: config reloaded', 5000)
  await waitFor(async () => (await admin(adminPort, '/readyz')).status === 200, { what: 'ready again on rtpengine b', timeoutMs: 5000 })
  const uac = call()
  t.equal((await uac).successful, 1, 'calls go to the reloaded instance')
  t.same(await ng.list(target(b)), [], 'no session left on b')
  t.notOk(edge.logs().some((l) => l.msg === 'SIGHUP: these keys need a restart to take effect, kept as they were'), 'the instance list is live')

  // The mode is live too: back to off, SDP passes untouched and rtpengine sees nothing.
  writeFileSync(file, yaml(b.spec).replace('mode: anchor', 'mode: off'))
  edge.proc.kill('SIGHUP')
  await edge.waitLog((l) => l.msg === 'SIGHUP: config reloaded' && edge.logs().filter((x) => x.msg === 'SIGHUP: config reloaded').length === 2, 5000)
  const plain = await runUac({ t, scenario: 'uac', target: `${EDGE}:${edgePort}`, localIp: CALLER, calls: 1, durationMs: 1000, timeoutS: 10 })
  t.equal(plain.successful, 1, 'a call with media.mode off')
  t.match(readFileSync(plain.messages!, 'latin1'), new RegExp(`c=IN IP4 ${BACKEND.replace(/\./g, '\\.')}`), 'the SDP is the backend\'s own')
  t.notOk(edge.logs().some((l) => l.msg === 'SIGHUP: these keys need a restart to take effect, kept as they were'), 'media.mode is live')
})

t.test('an edge started without anchoring needs a restart to start anchoring (SIGHUP names the keys)', async (t) => {
  const eng = await startRtpengine({ t, n: 14 })
  const port = await freeUdpPort(EDGE)
  const { validateConfig } = await import('../../src/config/index.js')
  const { createEdge } = await import('../../src/edge/edge.js')
  const edge = await createEdge({ listen: [`udp:${EDGE}:${port}`], logLevel: 'silent' })
  await edge.start()
  t.teardown(() => edge.stop())
  const next = validateConfig({ listen: [`udp:${EDGE}:${port}`], logLevel: 'silent', secret: edge.config.secret, media: { mode: 'anchor', rtpengine: [eng.spec] } }, 'test').config!
  t.same(await edge.reload(next), ['media.mode', 'media.sets'], 'named as needing a restart')
  t.equal(edge.config.media.mode, 'off', 'the running value is kept')
})
