// The media room assembled from a validated `media` config, with its metrics, against a real rtpengine.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { Registry } from 'prom-client'
import { createMedia, mediaForSet } from '../../src/media/index.js'
import { loadConfig, validateMediaConfig } from '../../src/config/index.js'
import { runCli } from '../../src/edge/cli.js'
import { MediaStats, registerMediaMetrics } from '../../src/media/metrics.js'
import { waitFor } from '../helpers/net.js'
import { startRtpengine } from '../helpers/rtpengine.js'
import { callerSdp, sdpAddresses, udpRelay } from '../helpers/media.js'

t.test('media config: defaults, full form, every problem named by its key', async (t) => {
  const d = validateMediaConfig(undefined)
  t.same(d.errors, [])
  t.equal(d.config?.mode, 'off', 'no media section: mode off, nothing else needed')
  t.same(d.config?.interfaces, { public: 'external', internal: 'internal' })
  t.same(d.config?.replace, ['origin', 'session-connection'])
  t.equal(d.config?.onFailure, 'reject')
  t.equal(d.config?.rejectStatus, 503)
  const full = validateMediaConfig({
    mode: 'anchor',
    rtpengine: ['udp:10.0.0.5:22222;weight=2', 'udp:10.0.0.6:22222'],
    interfaces: { public: 'pub', internal: 'priv' },
    onFailure: 'passthrough', rejectStatus: 500, timeoutMs: 800, retransmitMs: 200, maxOfferAttempts: 3,
    flags: ['trust-address'], iceInternal: '', migrateOnDown: false, localAddress: '10.0.0.2',
    ping: { intervalMs: 2000, failThreshold: 2 },
    sets: { webrtc: { mode: 'anchor', flags: ['SDES-off'], extra: { 'transport-protocol': 'RTP/AVP', codec: { strip: ['PCMA'] } } }, legacy: 'off', voice: { flags: ['x'] } },
  })
  t.same(full.errors, [])
  const c = full.config!
  t.same(c.rtpengine, [{ host: '10.0.0.5', port: 22222, weight: 2 }, { host: '10.0.0.6', port: 22222, weight: 1 }])
  t.same(c.ping, { intervalMs: 2000, timeoutMs: 1000, failThreshold: 2, okThreshold: 2 }, 'a nested section given in part keeps the other defaults')
  t.same(mediaForSet(c, 'webrtc'), { mode: 'anchor', extra: { 'transport-protocol': 'RTP/AVP', codec: { strip: ['PCMA'] }, flags: ['SDES-off'] } })
  t.same(mediaForSet(c, 'legacy'), { mode: 'off', extra: undefined }, 'SET: MODE, the short form the flag --media-set SET=MODE gives')
  t.same(mediaForSet(c, 'voice'), { mode: 'anchor', extra: { flags: ['x'] } }, 'a set without mode follows media.mode')
  t.same(mediaForSet(c, 'other'), { mode: 'anchor', extra: undefined }, 'unlisted sets follow media.mode')
  t.same(validateMediaConfig({ rtpengine: 'udp:127.0.0.1:1, udp:127.0.0.1:2;weight=3' }).config?.rtpengine.length, 2, 'comma list (env/flags)')
  const bad = validateMediaConfig({
    mode: 'on', rtpengine: ['udp:rtp.local:1'], onFailure: 'drop', timeoutMs: 5, retransmitMs: 'x', unknownKey: 1,
    interfaces: { public: 'a b' }, ping: { okThreshold: 0 }, localAddress: 'eth0', migrateOnDown: 'yes',
    sets: { s: { mode: 'x' }, u: { extra: { n: 1.5 } } },
  })
  t.equal(bad.config, undefined)
  for (const re of [/media\.mode: "on" must be one of off, anchor/, /media\.rtpengine\[0\]: rtpengine 'udp:rtp\.local:1': 'rtp\.local' is not an IP literal/,
    /media\.onFailure/, /media\.timeoutMs/, /media\.retransmitMs/, /media\.unknownKey: unknown key/, /media\.interfaces\.public/,
    /media\.ping\.okThreshold/, /media\.localAddress: "eth0" is not an IP literal/, /media\.migrateOnDown/, /media\.sets\.s\.mode/,
    /media\.sets\.u\.extra\.n: 1\.5 is not representable/]) {
    t.ok(bad.errors.some((e) => re.test(e)), `error matching ${re}`)
  }
  const reserved = validateMediaConfig({ sets: { s: { extra: { sdp: 'v=0', 'call-id': 'x', flags: ['a'] } } } }).errors
  t.match(reserved, [/media\.sets\.s\.extra\.sdp: is set by the edge/, /media\.sets\.s\.extra\.call-id/, /media\.sets\.s\.extra\.flags: .*use the set's flags/])
  t.match(validateMediaConfig({ mode: 'anchor' }).errors, [/media\.rtpengine: must list at least one rtpengine \(udp:IP:PORT\) when media\.mode is anchor/])
  t.match(validateMediaConfig({ sets: { x: { mode: 'anchor' } } }).errors, [/media\.rtpengine: .* when media\.sets\.x is anchor/])
  t.match(validateMediaConfig({ timeoutMs: 100, retransmitMs: 200 }).errors, [/retransmitMs: 200 must not exceed media\.timeoutMs/])
  t.match(validateMediaConfig({ ping: { intervalMs: 500 } }).errors, [/media\.ping\.timeoutMs: 1000 must be less than media\.ping\.intervalMs/])
  t.match(validateMediaConfig({ rtpengine: ['udp:127.0.0.1:1', '127.0.0.1:1;weight=2'] }).errors, [/media\.rtpengine\[1\]: .* duplicates media\.rtpengine\[0\]/])
  t.match(validateMediaConfig([]).errors, [/media: .* must be a mapping/])
})

t.test('flags and environment: --media-mode, repeatable --media-rtpengine, --media-set SET=MODE, SIPEDGE_MEDIA_*', async (t) => {
  const r = loadConfig({
    argv: ['--backend', 'sip:127.0.1.1:5080', '--backend', 'set=fax:sip:127.0.1.2:5080', '--media-mode', 'anchor',
      '--media-rtpengine', 'udp:127.0.0.1:22222', '--media-rtpengine', 'udp:127.0.0.1:22223;weight=3', '--media-set', 'fax=off',
      '--media-ping-interval-ms', '2000', '--no-media-migrate-on-down'],
    env: { SIPEDGE_SECRET: 'x'.repeat(24), SIPEDGE_MEDIA_ON_FAILURE: 'passthrough', SIPEDGE_MEDIA_FLAGS: 'trust-address, strict-source' },
  })
  t.same(r.errors, [])
  const m = r.config.media
  t.equal(m.mode, 'anchor')
  t.same(m.rtpengine, ['udp:127.0.0.1:22222', 'udp:127.0.0.1:22223;weight=3'], 'the flag is repeatable')
  t.same(m.sets, { fax: { mode: 'off' } })
  t.equal(m.onFailure, 'passthrough', 'from SIPEDGE_MEDIA_ON_FAILURE')
  t.same(m.flags, ['trust-address', 'strict-source'], 'SIPEDGE_MEDIA_FLAGS comma list')
  t.same(m.ping, { intervalMs: 2000, timeoutMs: 1000, failThreshold: 3, okThreshold: 2 }, 'one nested key set, the others default')
  t.equal(m.migrateOnDown, false)
  const bad = loadConfig({ argv: ['--media-rtpengine', 'udp:rtp.example:22222', '--media-on-failure', 'drop', '--media-set', 'voice=anchor'], env: {} })
  t.match(bad.errors.join('\n'), /media\.rtpengine\[0\]: rtpengine 'udp:rtp\.example:22222': 'rtp\.example' is not an IP literal \(flag --media-rtpengine\)/)
  t.match(bad.errors.join('\n'), /media\.onFailure: "drop" must be one of reject, passthrough \(flag --media-on-failure\)/)
  const sets = loadConfig({ argv: ['--backend', 'sip:127.0.1.1:5080', '--media-set', 'defualt=anchor', '--media-rtpengine', 'udp:127.0.0.1:1'], env: {} })
  t.match(sets.errors.join('\n'), /media\.sets\.defualt: no backend is in set "defualt" \(did you mean default\?\)/, 'a set no backend names is a typo')

  // check-config: the file with the environment, every problem named by its key and line.
  const out: string[] = []
  const err: string[] = []
  const files: Record<string, string> = { 'media.yaml': 'backends: [sip:127.0.1.1:5080]\nmedia:\n  mode: anchor\n  ping: { okThreshold: 0 }\n' }
  const io = {
    env: { SIPEDGE_SECRET: 'x'.repeat(24) }, stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s), signals: new EventEmitter(),
    readFile: (p: string) => { if (files[p] === undefined) throw new Error('ENOENT'); return files[p]! },
  }
  t.equal(await runCli(['check-config', 'media.yaml'], io as never), 1)
  t.match(err.join(''), /media\.ping\.okThreshold: 0 is out of range 1\.\.100 \(file media\.yaml:4\)/)
  files['media.yaml'] = 'backends: [sip:127.0.1.1:5080]\nmedia:\n  mode: anchor\n'
  err.length = 0
  t.equal(await runCli(['check-config', 'media.yaml'], io as never), 1)
  t.match(err.join(''), /media\.rtpengine: must list at least one rtpengine \(udp:IP:PORT\) when media\.mode is anchor/)
  t.equal(await runCli(['check-config', 'media.yaml'], { ...io, env: { ...io.env, SIPEDGE_MEDIA_RTPENGINE: 'udp:127.0.0.1:22222' } } as never), 0, 'with SIPEDGE_MEDIA_RTPENGINE it passes')
})

t.test('createMedia from config + metrics: health, sessions, NG latency histogram, outcomes', async (t) => {
  const eng = await startRtpengine({ t, n: 4 })
  const { config, errors } = validateMediaConfig({ mode: 'anchor', rtpengine: [eng.spec], ping: { intervalMs: 100, timeoutMs: 90, okThreshold: 1 } })
  t.same(errors, [])
  const stats = new MediaStats()
  const media = createMedia(config!, { onCommand: stats.onCommand, onEvent: stats.onEvent })
  await media.start()
  t.teardown(() => media.stop())
  const registry = new Registry()
  registerMediaMetrics(registry, stats, media.pool)
  const inst = media.pool.instances[0]!
  await waitFor(() => inst.health === 'up', { what: 'rtpengine up', timeoutMs: 3000 })
  const call = { callId: 'metrics-1', offererTag: 'A' }
  const off = await media.anchor.offer(call, 'public', 'internal', callerSdp('127.0.4.5', 40000))
  if (off.action !== 'anchored') return t.fail(off.reason)
  t.same(sdpAddresses(off.sdp).all, [eng.internal])
  let text = await registry.metrics()
  t.match(text, new RegExp(`sipedge_media_sessions\\{instance="${inst.id}",address="${eng.spec}"\\} 1`))
  t.match(text, new RegExp(`sipedge_media_rtpengine_health\\{instance="${inst.id}",address="${eng.spec}",state="up"\\} 1`))
  t.match(text, new RegExp(`sipedge_media_ng_seconds_count\\{instance="${inst.id}",command="offer"\\} 1`))
  t.match(text, new RegExp(`sipedge_media_ng_seconds_bucket\\{instance="${inst.id}",command="offer",le="\\+Inf"\\} 1`))
  t.match(text, new RegExp(`sipedge_media_ng_commands_total\\{instance="${inst.id}",command="ping",outcome="ok"\\} \\d+`))
  t.match(text, /sipedge_media_outcomes_total\{command="offer",outcome="anchored"\} 1/)
  await media.anchor.delete(call, off.instance)
  text = await registry.metrics()
  t.match(text, new RegExp(`sipedge_media_sessions\\{instance="${inst.id}",address="${eng.spec}"\\} 0`))
  t.match(text, /sipedge_media_outcomes_total\{command="delete",outcome="deleted"\} 1/)
  t.same(await media.client.list(inst), [])
})

t.test('sipedge_media_ng_retransmissions_total: a lost NG request is sent again and counted', async (t) => {
  const eng = await startRtpengine({ t, n: 15 })
  const relay = await udpRelay({ host: eng.host, port: eng.ngPort }, { dropRequests: 1 })
  t.teardown(() => relay.close())
  const { config } = validateMediaConfig({ mode: 'anchor', rtpengine: [`udp:127.0.0.1:${relay.port}`], retransmitMs: 50, ping: { intervalMs: 600_000 } })
  const stats = new MediaStats()
  const media = createMedia(config!, { onCommand: stats.onCommand })
  await media.start()
  t.teardown(() => media.stop())
  const registry = new Registry()
  registerMediaMetrics(registry, stats, media.pool)
  const inst = media.pool.instances[0]!
  await waitFor(async () => /sipedge_media_ng_commands_total\{[^}]*command="ping",outcome="ok"\} 1/.test(await registry.metrics()), { what: 'the first ping answered', timeoutMs: 3000 })
  t.match(await registry.metrics(), new RegExp(`sipedge_media_ng_retransmissions_total\\{instance="${inst.id}"\\} 1`), 'the dropped ping was sent again once')
})
