import t from 'tap'
import { readFileSync } from 'node:fs'
import {
  DEFAULT_CONFIG,
  FLAGS,
  changedKeys,
  flagsHelp,
  loadConfig,
  parseArgv,
  parseBackendSpec,
  parseCidr,
  parseListenSpec,
  validateConfig,
  type EdgeConfig,
} from '../../src/edge/config.js'

const SECRET = 'a-very-long-test-secret-value'
const files = (map: Record<string, string>) => (p: string) => {
  const text = map[p]
  if (text === undefined) throw new Error(`ENOENT: no such file, open '${p}'`)
  return text
}
const load = (argv: string[], env: NodeJS.ProcessEnv = {}, fileMap: Record<string, string> = {}) =>
  loadConfig({ argv, env: { SIPEDGE_SECRET: SECRET, ...env }, readFile: files(fileMap) })

/** Errors of validating a YAML-ish object; the one error expected is checked by its text. */
const errs = (raw: unknown) => validateConfig(raw, 'test.yaml').errors

t.test('defaults work on a fresh machine: loopback listeners, no errors', async (t) => {
  const r = loadConfig({ argv: [], env: {} })
  t.same(r.errors, [])
  t.same(r.config.listen, ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'])
  t.equal(r.config.algorithm, 'round-robin')
  t.ok(r.config.secret.length >= 32, 'a random secret is generated')
  t.ok(r.warnings.some((w) => w.startsWith('secret:')), 'and its consequence is a warning')
  t.ok(r.warnings.some((w) => w.includes('no backends')))
  const again = loadConfig({ argv: [], env: {} })
  t.not(again.config.secret, r.config.secret, 'random per process')
  t.equal(loadConfig({ argv: [], env: {}, keepSecret: 'kept-secret-from-before' }).config.secret, 'kept-secret-from-before')
  t.ok(Object.isFrozen(DEFAULT_CONFIG.probe), 'defaults cannot be mutated by accident')
})

t.test('precedence: defaults < env < file < flags', async (t) => {
  const fileMap = { 'e.yaml': 'algorithm: weighted\nprobe:\n  intervalMs: 7000\nlisten: [udp:127.0.0.3:5070]\n' }
  const env = {
    SIPEDGE_ALGORITHM: 'hash-callid',
    SIPEDGE_PROBE_INTERVAL_MS: '6000',
    SIPEDGE_PROBE_TIMEOUT_MS: '1000',
    SIPEDGE_LISTEN: 'udp:127.0.0.4:5060,tcp:127.0.0.4:5060',
    SIPEDGE_MASK_CALL_ID: 'true',
  }
  const envOnly = load([], env)
  t.same(envOnly.errors, [])
  t.equal(envOnly.config.algorithm, 'hash-callid')
  t.same(envOnly.config.listen, ['udp:127.0.0.4:5060', 'tcp:127.0.0.4:5060'], 'env lists are comma separated')
  t.equal(envOnly.config.maskCallId, true)

  const withFile = load(['--config', 'e.yaml'], env, fileMap)
  t.same(withFile.errors, [])
  t.equal(withFile.file, 'e.yaml')
  t.equal(withFile.config.algorithm, 'weighted', 'file beats env')
  t.equal(withFile.config.probe.intervalMs, 7000)
  t.equal(withFile.config.probe.timeoutMs, 1000, 'nested objects merge key by key across layers')
  t.equal(withFile.config.probe.failThreshold, 3, 'untouched nested keys keep their defaults')
  t.same(withFile.config.listen, ['udp:127.0.0.3:5070'], 'lists replace, not append')

  const withFlags = load(['--config=e.yaml', '--algorithm', 'least-calls', '--probe-interval-ms=8000', '--listen', 'udp:127.0.0.5', '--listen', 'tcp:127.0.0.5:5062'], env, fileMap)
  t.same(withFlags.errors, [])
  t.equal(withFlags.config.algorithm, 'least-calls', 'flags beat the file')
  t.equal(withFlags.config.probe.intervalMs, 8000)
  t.same(withFlags.config.listen, ['udp:127.0.0.5', 'tcp:127.0.0.5:5062'], 'repeated flags accumulate')

  const viaEnvFile = load([], { SIPEDGE_CONFIG: 'e.yaml' }, fileMap)
  t.equal(viaEnvFile.file, 'e.yaml', 'SIPEDGE_CONFIG names the file when --config is absent')
})

t.test('every config leaf has exactly one flag and env variable, and --help lists them', async (t) => {
  const leaves: string[] = []
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      const path = prefix + k
      if (v && typeof v === 'object' && !Array.isArray(v) && !['setAlgorithms', 'logLevels', 'sets'].includes(k)) {
        walk(v as Record<string, unknown>, `${path}.`)
      } else leaves.push(path)
    }
  }
  walk(DEFAULT_CONFIG as unknown as Record<string, unknown>, '')
  leaves.push('trunk', 'admin', 'adminToken', 'adminWebrtcPage', 'etcd.endpoints', 'etcd.prefix', 'etcd.username', 'etcd.password', 'etcd.cacert', 'etcd.cert', 'etcd.key', 'hep.address', 'hep.id', 'hep.password')
  leaves.push('tls.certFile', 'tls.keyFile', 'tls.caFile', 'tls.clientCaFile', 'registrar.set')
  leaves.push('media.localAddress')
  const keys = FLAGS.map((f) => f.key)
  t.same([...keys].sort(), [...new Set(leaves)].sort(), 'FLAGS keys = config leaves')
  t.equal(new Set(FLAGS.map((f) => f.flag)).size, FLAGS.length, 'flag names unique')
  t.equal(new Set(FLAGS.map((f) => f.env)).size, FLAGS.length, 'env names unique')
  const help = flagsHelp()
  for (const f of FLAGS) t.ok(help.includes(`--${f.type === 'boolean' ? '[no-]' : ''}${f.flag}`), `help lists --${f.flag}`)
  t.ok(help.includes('--config FILE'))
})

t.test('flag forms: booleans, --no-, maps, int lists, secrets on the command line', async (t) => {
  const r = load(['--no-probe', '--mask-call-id', '--set-algorithm', 'sales=least-calls', '--set-algorithm=support=weighted',
    '--failover-codes', '408,503', '--component-log-level', 'proxy=debug,dispatch=trace',
    '--backend', 'set=sales:sip:127.0.1.1:5080', '--backend', 'set=support:sip:127.0.1.2:5080', '--secret', 'another-long-secret-value'])
  t.same(r.errors, [])
  t.equal(r.config.probe.enabled, false)
  t.equal(r.config.maskCallId, true)
  t.same(r.config.setAlgorithms, { sales: 'least-calls', support: 'weighted' })
  t.same(r.config.failover.codes, [408, 503])
  t.same(r.config.logLevels, { proxy: 'debug', dispatch: 'trace' })
  t.equal(r.config.secret, 'another-long-secret-value')
  t.ok(r.warnings.some((w) => w.startsWith('--secret:') && w.includes('SIPEDGE_SECRET')), 'secret flags warn about ps')
  t.equal(load(['--mask-call-id=false']).config.maskCallId, false)
  t.equal(load(['--probe=0']).config.probe.enabled, false)
  const p = parseArgv(['-h', '--version', '--', '--listen'])
  t.ok(p.help && p.version)
  t.same(p.positionals, ['--listen'], '-- ends flag parsing')
})

t.test('flag and env errors name the flag or variable', async (t) => {
  t.match(load(['--listn', 'x']).errors, [/^--listn: unknown flag; see --help$/])
  t.match(load(['--maskCallId']).errors, [/did you mean --mask-call-id/])
  t.match(load(['--algorithm']).errors, [/^--algorithm: needs a value/])
  t.match(load(['--config']).errors, [/^--config: needs a FILE/])
  t.match(load(['--probe-interval-ms', 'soon']).errors, [/^probe\.intervalMs: "soon" is not an integer \(flag --probe-interval-ms\)$/])
  t.match(load(['--failover-codes', '408,x']).errors, [/failover\.codes: "x" is not an integer/])
  t.match(load(['--set-algorithm', 'sales']).errors, [/setAlgorithms: "sales" is not NAME=VALUE/])
  t.match(load(['--no-listen']).errors, [/--no-listen: unknown flag/], '--no- only for booleans')
  t.match(load(['stray']).errors, [/unexpected argument "stray"/])
  t.match(load([], { SIPEDGE_MASK_CALL_ID: 'maybe' }).errors, [/maskCallId: "maybe" is not a boolean \(true\/false\) \(env SIPEDGE_MASK_CALL_ID\)/])
  t.match(load([], { SIPEDGE_LISTEN: 'udp:1.2.3' }).errors, [
    `listen[0]: "udp:1.2.3" is not proto:host[:port] [advertise host[:port]]: '1.2.3' is not an IP address (env SIPEDGE_LISTEN)`,
  ])
  t.match(load(['--listen', 'udp:127.0.0.1:5060', '--listen', 'udp:1.2.3']).errors, [/^listen\[1\]: "udp:1\.2\.3" is not proto:host\[:port\].*\(flag --listen\)$/])
  t.match(load(['--probe-timeout-ms', '5']).errors, [/^probe\.timeoutMs: 5 is out of range 50\.\.60000 \(flag --probe-timeout-ms\)$/])
  t.match(load([], { SIPEDGE_SECRET: 'short' }).errors, [/^secret: must be at least 16 characters \(env SIPEDGE_SECRET\)$/])
})

t.test('file errors: unreadable, YAML syntax, not a mapping', async (t) => {
  t.match(load(['--config', 'missing.yaml']).errors, [/^config: cannot read missing\.yaml: ENOENT/])
  const bad = load(['--config', 'b.yaml'], {}, { 'b.yaml': 'listen:\n  - udp:127.0.0.1\n algorithm: [\n' })
  t.ok(bad.errors.length > 0)
  t.match(bad.errors[0], /^b\.yaml:\d+:\d+: YAML error: /, 'YAML errors carry line:column')
  t.match(load(['--config', 'd.yaml'], {}, { 'd.yaml': 'algorithm: weighted\nalgorithm: hash-callid\n' }).errors, [/d\.yaml:2:1: YAML error: .*[Uu]nique/], 'duplicate keys are errors')
  t.match(load(['--config', 'l.yaml'], {}, { 'l.yaml': '- a\n- b\n' }).errors, [/^\(top level\): must be a mapping of keys to values \(file l\.yaml\)$/])
  t.same(load(['--config', 'e.yaml'], {}, { 'e.yaml': '' }).errors, [], 'an empty file is an empty layer')
  t.match(load(['--config', 'u.yaml'], {}, { 'u.yaml': 'listen: [udp:127.0.0.1:99999]\n' }).errors, [/^listen\[0\]: .*\(file u\.yaml:1\)$/])
})

t.test('validation: every kind of problem names the key', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ lsiten: [] }, /^lsiten: unknown key \(did you mean listen\?\) \(test\.yaml\)$/],
    [{ zzz: 1 }, /^zzz: unknown key \(test\.yaml\)$/],
    [{ 'mask-call-id': true }, /^mask-call-id: unknown key \(did you mean maskCallId\? YAML keys are camelCase\)/],
    [{ maskcallid: true }, /did you mean maskCallId\?/],
    [{ probe: { interval: 5 } }, /^probe\.interval: unknown key/],
    [{ listen: 5060 }, /^listen: 5060 must be a list/],
    [{ listen: [5060] }, /^listen\[0\]: 5060 must be a string/],
    [{ listen: ['sctp:127.0.0.1:5060'] }, /^listen\[0\]: "sctp:127\.0\.0\.1:5060" is not proto:host\[:port\]/],
    [{ listen: ['udp:localhost:5060'] }, /^listen\[0\]: "udp:localhost:5060" is not proto:host\[:port\] \[advertise host\[:port\]\]: 'localhost' is not an IP address/],
    [{ listen: ['udp:0.0.0.0:5060 advertise 192.0.2.1:99999'] }, /^listen\[0\]: .*bad port '99999'/],
    [{ listen: [] }, /^listen: must list at least one listener$/],
    [{ listen: ['udp:127.0.0.1:5060', 'udp:127.0.0.1'] }, /^listen\[1\]: "udp:127\.0\.0\.1" is already used by listen\[0\]$/],
    [{ internalListen: ['udp:127.0.0.1:5060'] }, /^internalListen\[0\]: .*already used by listen\[0\]/],
    [{ backends: ['http://127.0.1.1'] }, /^backends\[0\]: "http:\/\/127\.0\.1\.1": .*sip:/],
    [{ backends: ['sip:asterisk1:5080'] }, /^backends\[0\]: .*IP literal/],
    [{ backends: ['sip:127.0.1.1;weight=x'] }, /^backends\[0\]: .*weight/],
    [{ backends: ['set=a b:sip:127.0.1.1'] }, /^backends\[0\]: .*set name "a b"/],
    [{ backends: ['sip:127.0.1.1:5080', 'sip:127.0.1.1:5080;weight=3'] }, /^backends\[1\]: .*duplicates backends\[0\] in set default$/],
    [{ algorithm: 'random' }, /^algorithm: "random" must be one of round-robin, weighted, hash-callid, hash-from-user, least-calls/],
    [{ setAlgorithms: ['a'] }, /^setAlgorithms: \["a"\] must be a mapping/],
    [{ setAlgorithms: { sales: 'random' } }, /^setAlgorithms\.sales: "random" must be one of/],
    [{ setAlgorithms: { 'a b': 'weighted' } }, /^setAlgorithms\.a b: "a b" is not a valid name/],
    [{ secret: 1234567890123456 }, /^secret: 1234567890123456 must be a string/],
    [{ secret: 'short' }, /^secret: must be at least 16 characters/],
    [{ etcd: { prefix: '/x/' } }, /^etcd\.endpoints: is required when etcd is configured$/],
    [{ etcd: { endpoints: [] } }, /^etcd\.endpoints: must list at least one endpoint$/],
    [{ etcd: { endpoints: ['ftp://127.0.0.1:2379'] } }, /^etcd\.endpoints\[0\]: "ftp:\/\/127\.0\.0\.1:2379" is not an etcd endpoint/],
    [{ etcd: { endpoints: ['127.0.0.1:2379'], prefix: 'x' } }, /^etcd\.prefix: "x" must start and end with \//],
    [{ etcd: 'http://127.0.0.1:2379' }, /^etcd: "http:\/\/127\.0\.0\.1:2379" must be a mapping/],
    [{ probe: { intervalMs: 10 } }, /^probe\.intervalMs: 10 is out of range 100\.\.3600000/],
    [{ probe: { intervalMs: 1.5 } }, /^probe\.intervalMs: 1\.5 must be an integer/],
    [{ probe: { intervalMs: '5000' } }, /^probe\.intervalMs: "5000" must be an integer/],
    [{ probe: { enabled: 'yes' } }, /^probe\.enabled: "yes" must be true or false/],
    [{ probe: { intervalMs: 1000, timeoutMs: 1000 } }, /^probe\.timeoutMs: 1000 must be less than probe\.intervalMs \(1000\)/],
    [{ probe: null }, /^probe: must not be null/],
    [{ failover: { maxTries: 0 } }, /^failover\.maxTries: 0 is out of range 1\.\.16/],
    [{ failover: { codes: [200] } }, /^failover\.codes\[0\]: 200 is out of range 300\.\.699/],
    [{ failover: { codes: ['503'] } }, /^failover\.codes\[0\]: "503" must be an integer/],
    [{ failover: { codes: true } }, /^failover\.codes: true must be a list of integers/],
    [{ trunk: 'gw.example.com' }, /^trunk: "gw\.example\.com" is not a SIP URI/],
    [{ trunk: 'sip:192.0.2.1:99999' }, /^trunk: .*port must be 0\.\.65535/],
    [{ trunk: 'sip:gw-.example.com' }, /^trunk: "sip:gw-\.example\.com": "gw-\.example\.com" is neither an IP address nor a host name/],
    [{ trunk: 'sip:10.0.0.999' }, /^trunk: .*neither an IP address nor a host name/],
    [{ domains: ['pbx.example.com:99999'] }, /^domains\[0\]: .*port must be 1\.\.65535|^domains\[0\]: .*is not a host name or host:port/],
    [{ domains: ['sip:pbx.example.com'] }, /^domains\[0\]: "sip:pbx\.example\.com" is not a host name or host:port/],
    [{ domains: ['pbx..example.com'] }, /^domains\[0\]: .*is not a host name or host:port/],
    [{ inboundTrunks: ['carrier.example.com'] }, /^inboundTrunks\[0\]: "carrier\.example\.com" is not a CIDR/],
    [{ inboundTrunks: ['198.51.100.1/24'] }, /^inboundTrunks\[0\]: .*has host bits set: did you mean 198\.51\.100\.0\/24\?/],
    [{ inboundTrunks: ['set=a b:198.51.100.0/24'] }, /^inboundTrunks\[0\]: .*set name "a b" must be letters, digits/],
    [{ backends: ['sip:127.0.1.1:5080'], inboundTrunks: ['set=carrier:198.51.100.0/24'] }, /^inboundTrunks\[0\]: "set=carrier:198\.51\.100\.0\/24": no backend is in set "carrier"; sets: default/],
    [{ dns: { servers: ['resolver.example.com'] } }, /^dns\.servers\[0\]: "resolver\.example\.com" is not a DNS server address/],
    [{ dns: { servers: ['10.0.0.53:0'] } }, /^dns\.servers\[0\]: .*is not a DNS server address/],
    [{ dns: { timeoutMs: 10 } }, /^dns\.timeoutMs: 10 is out of range 50\.\.30000/],
    [{ dns: { staleMs: -1 } }, /^dns\.staleMs: -1 is out of range/],
    [{ trunk: 'sip:[zz::1]' }, /^trunk: .*not a SIP URI/],
    [{ trustedNetworks: ['10.0.0.0/33'] }, /^trustedNetworks\[0\]: "10\.0\.0\.0\/33": prefix length must be 0\.\.32/],
    [{ allowPublic: ['somewhere'] }, /^allowPublic\[0\]: "somewhere" is not a CIDR/],
    [{ denyPublic: ['fd00::/129'] }, /^denyPublic\[0\]: .*0\.\.128/],
    [{ allowInternal: ['10.0.0.0/x'] }, /^allowInternal\[0\]:/],
    [{ denyInternal: [1] }, /^denyInternal\[0\]: 1 must be a string/],
    [{ rateLimit: { action: 'ignore' } }, /^rateLimit\.action: "ignore" must be one of reply, drop/],
    [{ rateLimit: { burst: 0 } }, /^rateLimit\.burst: 0 is out of range/],
    [{ maskCallId: 1 }, /^maskCallId: 1 must be true or false/],
    [{ admin: '8080' }, /^admin: "8080" is not host:port/],
    [{ admin: 'localhost:8080' }, /^admin: "localhost:8080" is not host:port/],
    [{ adminToken: 'abc' }, /^adminToken: must be at least 8 characters/],
    [{ hep: { id: 5 } }, /^hep\.address: is required when hep is configured/],
    [{ hep: { address: 'tcp:127.0.0.1:9060' } }, /^hep\.address: "tcp:127\.0\.0\.1:9060" is not udp:host:port/],
    [{ hep: { address: 'udp:127.0.0.1:9060', id: -1 } }, /^hep\.id: -1 is out of range/],
    [{ logLevel: 'verbose' }, /^logLevel: "verbose" must be one of fatal, error, warn, info, debug, trace, silent/],
    [{ logLevels: { Proxy: 'debug' } }, /^logLevels\.Proxy: "Proxy" is not a valid name/],
    [{ logLevels: { proxy: 'loud' } }, /^logLevels\.proxy: "loud" must be one of/],
    [{ limits: { maxMessageSize: 100 } }, /^limits\.maxMessageSize: 100 is out of range 1500\.\./],
    [{ limits: { maxDialogs: 0 } }, /^limits\.maxDialogs: 0 is out of range/],
    [{ limits: { dialogTtlS: 1 } }, /^limits\.dialogTtlS: 1 is out of range/],
    [{ shutdownTimeoutMs: -1 }, /^shutdownTimeoutMs: -1 is out of range 0\.\.3600000/],
    ['just a string', /^\(top level\): must be a mapping/],
  ]
  for (const [raw, re] of cases) {
    const e = errs(raw)
    t.equal(e.length, 1, `one error for ${JSON.stringify(raw)}: ${JSON.stringify(e)}`)
    t.match(e[0], re)
  }
})

t.test('validation accepts the documented syntaxes', async (t) => {
  const r = validateConfig(
    {
      listen: ['udp:0.0.0.0:5060 advertise 203.0.113.7', 'tcp:[::1]:5061', 'UDP:127.0.0.1:0'],
      internalListen: ['udp:127.0.0.2'],
      backends: ['sip:127.0.1.1:5080;weight=2;priority=1', 'set=sales:sip:[fd00::5]:5060;transport=tcp'],
      setAlgorithms: { sales: 'hash-from-user' },
      etcd: { endpoints: ['127.0.0.1:2379', 'https://127.0.0.2:2379'] },
      trunk: 'sip:+15551234@192.0.2.1:5060;transport=udp',
      trustedNetworks: ['10.0.0.0/8', '192.0.2.7', '::1', 'fd00::/8'],
      admin: '[::1]:0',
      adminToken: 'token-123456',
      hep: { address: '127.0.0.1:9060' },
      etcdNull: undefined,
    },
    'ok.yaml',
  )
  t.match(r.errors, [/^etcdNull: unknown key/], 'unknown keys are errors even when undefined')
  const ok = validateConfig(
    {
      listen: ['udp:0.0.0.0:5060 advertise 203.0.113.7', 'tcp:[::1]:5061'],
      backends: ['sip:127.0.1.1:5080;weight=2;priority=1', 'set=sales:sip:[fd00::5]:5060;transport=tcp'],
      setAlgorithms: { sales: 'hash-from-user' },
      etcd: { endpoints: ['127.0.0.1:2379', 'https://127.0.0.2:2379'] },
      trunk: 'sip:+15551234@192.0.2.1:5060;transport=udp',
      hep: { address: '127.0.0.1:9060' },
      admin: null,
    },
    'ok.yaml',
  )
  t.same(ok.errors, [])
  const c = ok.config as EdgeConfig
  t.same(c.etcd, { prefix: '/sipedge/backends/', endpoints: ['http://127.0.0.1:2379', 'https://127.0.0.2:2379'] }, 'endpoints normalised, prefix defaulted')
  t.same(c.hep, { id: 1, address: '127.0.0.1:9060' })
  t.equal(c.admin, undefined, 'null unsets an optional key')
  const named = validateConfig(
    {
      backends: ['sip:127.0.1.1:5080', 'set=carrier-b:sip:127.0.1.2:5080'],
      trunk: 'sip:trunk.carrier.example;transport=tcp',
      domains: ['pbx.example.com', 'Voice.Example.com:5080', '203.0.113.7:5060', '[2001:db8::7]:5060', 'pbx.example.com.'],
      inboundTrunks: ['198.51.100.0/28', 'set=carrier-b:203.0.113.9', '2001:db8::/32'],
      dns: { servers: ['10.0.0.53', '10.0.0.54:5353', '[::1]:53', '::1'], staleMs: 0 },
    },
    'named.yaml',
  )
  t.same(named.errors, [], 'trunk by name, domains, inbound trunks, DNS servers')
})

t.test('address helpers', async (t) => {
  t.same(parseListenSpec('udp:127.0.0.1', 'public'), { proto: 'udp', host: '127.0.0.1', port: 5060, side: 'public' })
  t.same(parseListenSpec('tcp:[::1]:5070 advertise [2001:db8::1]', 'internal'), {
    proto: 'tcp', host: '::1', port: 5070, side: 'internal', advertise: '[2001:db8::1]',
  })
  t.type(parseListenSpec('udp:127.0.0.1:5060;advertise=192.0.2.1', 'public'), 'string', 'one syntax: the transports\'')
  t.type(parseListenSpec('udp:[::1', 'public'), 'string')
  t.type(parseListenSpec('udp:127.0.0.1:', 'public'), 'string')
  const b = parseBackendSpec('set=sales:sip:127.0.1.1:5080;weight=2;priority=1;transport=tcp')
  t.match(b, { set: 'sales', weight: 2, priority: 1, admin: 'active', source: 'static' })
  t.notMatch(typeof b === 'string' ? b : b.uri, /weight|priority/, 'weight/priority leave the URI')
  t.match(parseBackendSpec('sip:127.0.1.1'), { set: 'default', weight: 1, priority: 0 })
  t.same(parseCidr('10.1.0.0/16'), { family: 4, address: '10.1.0.0', bits: 16 })
  t.same(parseCidr('::1'), { family: 6, address: '::1', bits: 128 })
})

t.test('warnings: admin exposed without token; a set with no backend is an error without etcd', async (t) => {
  const r = load(['--admin', '0.0.0.0:8080', '--backend', 'sip:127.0.1.1'])
  t.same(r.errors, [])
  t.ok(r.warnings.some((w) => w.startsWith('admin: 0.0.0.0:8080 is not loopback')))
  t.same(load(['--backend', 'sip:127.0.1.1', '--set-algorithm', 'defualt=weighted']).errors, [
    'setAlgorithms.defualt: no backend is in set "defualt" (did you mean default?); sets: default',
  ])
  t.same(load(['--etcd', 'http://127.0.0.1:2379', '--set-algorithm', 'ghost=weighted']).errors, [], 'with etcd, sets come at run time')
  t.notOk(load(['--admin', '127.0.0.1:8080', '--backend', 'sip:127.0.1.1']).warnings.some((w) => w.startsWith('admin:')))
})

t.test('changedKeys lists top-level keys that differ', async (t) => {
  const a = load(['--backend', 'sip:127.0.1.1']).config
  const b = load(['--backend', 'sip:127.0.1.2', '--probe-interval-ms', '9000']).config
  t.same(changedKeys(a, b).sort(), ['backends', 'probe'])
  t.same(changedKeys(a, a), [])
})

t.test('examples/sipedge.yaml is valid', async (t) => {
  const text = readFileSync(new URL('../../examples/sipedge.yaml', import.meta.url), 'utf8')
  const r = loadConfig({ argv: ['--config', 'examples/sipedge.yaml'], env: { SIPEDGE_SECRET: 'a-real-one-0123456789' }, readFile: () => text })
  t.same(r.errors, [])
  t.equal(r.config.algorithm, 'least-calls')
  t.equal(r.config.backends.length, 3)
  t.equal(r.warnings.length, 0, `no warnings: ${JSON.stringify(r.warnings)}`)
})
