// The example configuration and deployment files: they parse, and what they say matches the code (config
// keys, flags, admin endpoints). Docker and Kubernetes are not available here, so this is as far as it goes.
import { readFileSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { FLAGS, loadConfig, readYamlConfig, validateConfig } from '../../src/edge/config.js'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8')

type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

function docs(path: string): Doc[] {
  const all = parseAllDocuments(read(path))
  const list = Array.isArray(all) ? all : [all]
  for (const d of list) if (d.errors.length) throw new Error(`${path}: ${d.errors.map((e) => e.message).join('; ')}`)
  return list.map((d) => d.toJS() as Doc)
}

t.test('examples/sipedge.yaml is valid and mentions every top-level key', async (t) => {
  const y = readYamlConfig(join(ROOT, 'examples/sipedge.yaml'), (p) => readFileSync(p, 'utf8'))
  t.same(y.errors, [])
  const r = validateConfig(y.raw, 'examples/sipedge.yaml')
  t.same(r.errors, [], 'no validation error')
  const text = read('examples/sipedge.yaml')
  const keys = new Set(FLAGS.map((f) => f.key.split('.')[0]!))
  for (const k of keys) t.match(text, new RegExp(`^#? *${k}:`, 'm'), `${k} is shown (set or commented)`)
  for (const f of FLAGS.filter((x) => x.key.includes('.'))) {
    t.match(text, new RegExp(`^#? +${f.key.split('.')[1]}:`, 'm'), `${f.key} is shown`)
  }
})

t.test('docker-compose.yml: edge and rtpengine on both networks, Asterisks internal only, registrant sidecars', async (t) => {
  const [c] = docs('examples/docker-compose/docker-compose.yml')
  const s = c!.services
  t.same(Object.keys(s).sort(), ['asterisk1', 'asterisk1-registrant', 'asterisk2', 'asterisk2-registrant', 'etcd', 'rtpengine', 'sipedge'])
  t.same(Object.keys(s.rtpengine.networks).sort(), ['internal', 'public'], 'rtpengine on both networks')
  const rtpIf = (name: string) => (s.rtpengine.command as string[]).find((a) => a.startsWith(`--interface=${name}/`))!.split('/')[1]!.split('!')[0]
  t.equal(rtpIf('internal'), s.rtpengine.networks.internal.ipv4_address, 'rtpengine interface internal on the internal net')
  t.equal(rtpIf('external'), s.rtpengine.networks.public.ipv4_address, 'rtpengine interface external on the public net')
  t.equal(c!.networks.internal.internal, true, 'the internal network has no way out')
  t.same(Object.keys(s.sipedge.networks).sort(), ['internal', 'public'], 'edge on both networks')
  for (const a of ['asterisk1', 'asterisk2']) {
    t.same(Object.keys(s[a].networks), ['internal'], `${a} only on the internal network`)
    t.equal(s[a].ports, undefined, `${a} publishes no port: its RTP stays internal`)
    const reg = s[`${a}-registrant`]
    t.equal(reg.network_mode, `service:${a}`, `${a}'s registrant shares its network namespace`)
    t.equal(reg.command[0], 'register')
    const ip = s[a].networks.internal.ipv4_address
    t.ok(reg.command.includes(`--uri=sip:${ip}:5060`), `registrant announces ${ip}`)
    const drain = Number(reg.command.find((x: string) => x.startsWith('--drain-timeout='))!.split('=')[1])
    t.ok(parseInt(reg.stop_grace_period, 10) > drain, 'grace period above the drain timeout')
  }
  // The edge's environment must be a valid sipedge configuration (with the compose variables filled in).
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(s.sipedge.environment as Record<string, string>)) {
    env[k] = String(v).replace(/\$\{SIPEDGE_SECRET[^}]*\}/, 'x'.repeat(24)).replace(/\$\{PUBLIC_IP[^}]*\}/g, '203.0.113.10')
  }
  const cfg = loadConfig({ argv: [], env })
  t.same(cfg.errors, [], 'edge environment validates')
  t.equal(cfg.config.internalListen[0], 'udp:10.88.0.10:5060')
  t.equal(cfg.config.etcd?.endpoints[0], 'http://10.88.0.5:2379')
  t.equal(cfg.config.media.mode, 'anchor', 'media anchored')
  t.same(cfg.config.media.rtpengine, [`udp:${s.rtpengine.networks.internal.ipv4_address}:22222`], 'through the compose rtpengine')
  t.ok((s.rtpengine.command as string[]).includes(`--listen-ng=${s.rtpengine.networks.internal.ipv4_address}:22222`), 'rtpengine listens for NG there')
  t.ok(parseInt(s.sipedge.stop_grace_period, 10) * 1000 > cfg.config.shutdownTimeoutMs, 'edge grace above its drain deadline')
  const pjsip = read('examples/docker-compose/asterisk/pjsip.conf')
  t.match(pjsip, /^match=10\.88\.0\.10$/m, 'Asterisk identifies the edge by its internal address')
  t.match(pjsip, /^contact=sip:10\.88\.0\.10:5060$/m)
  t.notMatch(pjsip, /^external_signaling_address/m, 'no external signaling address behind the edge')
  t.notMatch(pjsip, /^external_media_address/m, 'no external media address: rtpengine rewrites SDP')
})

t.test('kubernetes manifests: probes, drain, secret, two Services, register sidecar', async (t) => {
  const files = readdirSync(join(ROOT, 'examples/kubernetes')).filter((f) => f.endsWith('.yaml'))
  t.same(files.sort(), ['asterisk.yaml', 'etcd.yaml', 'sipedge.yaml'])
  const all = files.flatMap((f) => docs(`examples/kubernetes/${f}`))
  const find = (kind: string, name: string) => all.find((d) => d.kind === kind && d.metadata?.name === name)
  const dep = find('Deployment', 'sipedge')!
  const pod = dep.spec.template.spec
  const c = pod.containers[0]
  t.equal(c.readinessProbe.httpGet.path, '/readyz')
  t.equal(c.livenessProbe.httpGet.path, '/healthz')
  const envOf = (name: string) => c.env.find((e: Doc) => e.name === name)
  t.same(envOf('SIPEDGE_SECRET').valueFrom.secretKeyRef, { name: 'sipedge', key: 'secret' })
  t.ok(find('Secret', 'sipedge')?.stringData?.secret, 'the Secret exists')

  // The ConfigMap's file validates, and with the Deployment's environment gives a working config.
  const file = find('ConfigMap', 'sipedge')!.data['sipedge.yaml'] as string
  const podEnv: Record<string, string> = { SIPEDGE_SECRET: 'x'.repeat(24) }
  for (const e of c.env as Doc[]) {
    if (typeof e.value === 'string') podEnv[e.name] = e.value.replace('$(PUBLIC_IP)', '203.0.113.10').replace('$(PUBLIC_IP)', '203.0.113.10').replace('$(POD_IP)', '10.244.1.7')
  }
  const cfg = loadConfig({ argv: ['--config', 'sipedge.yaml'], env: podEnv, readFile: () => file })
  t.same(cfg.errors, [], 'ConfigMap + env validate')
  t.ok(pod.terminationGracePeriodSeconds * 1000 > cfg.config.shutdownTimeoutMs, 'grace period above the drain deadline')
  t.equal(cfg.config.admin, '10.244.1.7:8080')

  const udp = find('Service', 'sipedge-udp')!
  const tcp = find('Service', 'sipedge-tcp')!
  t.same(udp.spec.ports.map((p: Doc) => p.protocol), ['UDP'], 'UDP Service carries only UDP')
  t.same(tcp.spec.ports.map((p: Doc) => p.protocol), ['TCP'], 'TCP Service carries only TCP')
  t.equal(udp.spec.loadBalancerIP, tcp.spec.loadBalancerIP, 'one address for both')

  const ast = find('Deployment', 'asterisk')!.spec.template.spec
  const reg = ast.containers.find((x: Doc) => x.name === 'register')
  t.equal(reg.args[0], 'register')
  const drain = Number(reg.args.find((a: string) => a.startsWith('--drain-timeout=')).split('=')[1])
  t.ok(ast.terminationGracePeriodSeconds > drain, 'Asterisk pods outlive the drain')
})
