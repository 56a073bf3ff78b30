// What check-config and the loader catch beyond the shape of each key (issue 16): placeholders, sips:, host
// bits, sets no backend names, listeners that cannot bind together; YAML lines and did-you-mean on every kind
// of problem; comma lists in YAML; the environment read by check-config.
import { EventEmitter } from 'node:events'
import t from 'tap'
import { runCli, usage, type CliIo } from '../../src/edge/cli.js'
import { loadConfig, parseCidr } from '../../src/edge/config.js'
import { etcdErrorText } from '../../src/discovery/etcd_client.js'

const SECRET = 'a-very-long-test-secret-value'
const load = (argv: string[], env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}) =>
  loadConfig({
    argv,
    env: { SIPEDGE_SECRET: SECRET, ...env },
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`)
      return files[p]!
    },
  })

t.test('placeholder secrets are refused, wherever they come from', async (t) => {
  for (const s of ['change-me-to-32-random-characters', 'REPLACE-ME-with-32-random-characters', 'your-secret-goes-here-please']) {
    t.match(load([], { SIPEDGE_SECRET: s }).errors, [/^secret: is a placeholder from an example: generate one .*\(env SIPEDGE_SECRET\)$/], s)
  }
  const file = load(['--config', 's.yaml'], { SIPEDGE_SECRET: 'a-real-one-0123456789' }, { 's.yaml': 'secret: change-me-to-32-random-characters\n' })
  t.match(file.errors, [/^secret: is a placeholder .*\(file s\.yaml:1\)$/], 'the file beats the env: refused, not silently used')
  t.same(load([], { SIPEDGE_SECRET: 'x'.repeat(24) }).errors, [])
})

t.test('semantic problems: sips:, CIDR host bits, sets nobody serves, TCP next to a TCP wildcard', async (t) => {
  t.match(load(['--backend', 'sips:127.0.1.1:5061']).errors, [/^backends\[0\]: "sips:127\.0\.1\.1:5061": write a TLS next hop as sip:HOST:PORT;transport=tls/])
  t.match(load(['--backend', 'sip:127.0.1.1:5061;transport=tls']).errors, [/^backends\[0\]: "sip:127\.0\.1\.1:5061;transport=tls" needs a tls: listener/])
  t.match(load(['--trunk', 'sips:198.51.100.20']).errors, [/^trunk: "sips:198\.51\.100\.20": write a TLS next hop as sip:HOST:PORT;transport=tls/])
  t.match(load(['--deny-public', '10.0.0.1/8']).errors, [/^denyPublic\[0\]: "10\.0\.0\.1\/8" has host bits set: did you mean 10\.0\.0\.0\/8\?/])
  t.same(parseCidr('fd00::1/8'), '"fd00::1/8" has host bits set: did you mean fd00::/8?')
  t.same(parseCidr('10.0.0.0/8'), { family: 4, address: '10.0.0.0', bits: 8 })
  const twoSided = ['--listen', 'tcp:0.0.0.0:5060', '--internal-listen', 'tcp:10.0.0.2:5060']
  t.match(load(twoSided).errors, [/^internalListen\[0\]: "tcp:10\.0\.0\.2:5060" cannot bind next to listen\[0\] "tcp:0\.0\.0\.0:5060": a TCP wildcard takes port 5060 on every address\. Use another port/])
  t.same(load(['--listen', 'udp:0.0.0.0:5060', '--internal-listen', 'udp:10.0.0.2:5060']).errors, [], 'UDP shares the port')
  t.same(load(['--listen', 'tcp:0.0.0.0:5060', '--internal-listen', 'tcp:10.0.0.2:5061']).errors, [], 'another port is fine')
})

t.test('YAML: every problem names the key and its line; did-you-mean for keys and values; comma lists', async (t) => {
  const yaml = [
    'listen:', //                                          1
    '  - udp:127.0.0.1:5060', //                           2
    'backends: [sip:127.0.1.1:5080]', //                   3
    'algorithm: round-robbin', //                          4
    'probe:', //                                           5
    '  intervalMs: 1000', //                               6
    '  timeoutMs: 2000', //                                7
    'setAlgorithms:', //                                   8
    '  defualt: weighted', //                              9
    'failover:', //                                        10
    '  codes: 408,500,503', //                             11
    'denyPublic: 192.0.2.0/24, 198.51.100.0/24', //        12
    'logLevl: debug', //                                   13
  ].join('\n')
  const first = load(['--config', 'c.yaml'], {}, { 'c.yaml': yaml })
  t.same(first.errors, [
    'algorithm: "round-robbin" must be one of round-robin, weighted, hash-callid, hash-from-user, least-calls (did you mean round-robin?) (file c.yaml:4)',
    'logLevl: unknown key (did you mean logLevel?) (file c.yaml:13)',
  ])
  // Fixed those two: what only the merged config shows comes next, with the file's lines too.
  const second = load(['--config', 'c.yaml'], {}, { 'c.yaml': yaml.replace('round-robbin', 'round-robin').replace('logLevl', 'logLevel') })
  t.same(second.errors, [
    'probe.timeoutMs: 2000 must be less than probe.intervalMs (1000) (file c.yaml:7)',
    'setAlgorithms.defualt: no backend is in set "defualt" (did you mean default?); sets: default (file c.yaml:9)',
  ])
  const ok = load(['--config', 'c.yaml'], {}, { 'c.yaml': yaml.replace('round-robbin', 'round-robin').replace('logLevl', 'logLevel').replace('timeoutMs: 2000', 'timeoutMs: 500').replace('defualt', 'default') })
  t.same(ok.errors, [])
  t.same(ok.config.failover.codes, [408, 500, 503], 'a comma list in a YAML scalar, as the flag takes it')
  t.same(ok.config.denyPublic, ['192.0.2.0/24', '198.51.100.0/24'])
})

function harness(env: NodeJS.ProcessEnv, files: Record<string, string>) {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = {
    stdout: (s) => void out.push(s),
    stderr: (s) => void err.push(s),
    env,
    readFile: (p) => files[p] ?? (() => { throw new Error(`ENOENT: ${p}`) })(),
    signals: new EventEmitter(),
  }
  return { io, out, err }
}

t.test('check-config reads the environment the edge will run with', async (t) => {
  const files = { 'a.yaml': 'backends: [sip:127.0.1.1:5080]\n' }
  const bad = harness({ SIPEDGE_SECRET: SECRET, SIPEDGE_PROBE_INTERVAL_MS: 'abc' }, files)
  t.equal(await runCli(['check-config', 'a.yaml'], bad.io), 1)
  t.match(bad.err.join(''), /probe\.intervalMs: "abc" is not an integer \(env SIPEDGE_PROBE_INTERVAL_MS\)/)
  const good = harness({ SIPEDGE_SECRET: SECRET }, files)
  t.equal(await runCli(['check-config', 'a.yaml'], good.io), 0)
  t.equal(good.out.join(''), 'a.yaml: OK\n')
})

t.test('--help: adminToken minimum length, exit codes, npx and signals', async (t) => {
  const help = usage()
  t.match(help, /--admin-token TOKEN\s+bearer token for the admin API \(>= 8 chars; prefer SIPEDGE_ADMIN_TOKEN\)/)
  t.match(help, /3 when shutdownTimeoutMs cut calls/)
  t.match(help, /npx does not pass signals on/)
  t.match(load(['--admin-token', 'short']).errors, [/^adminToken: must be at least 8 characters/])
})

t.test('etcd lease errors read as sentences', async (t) => {
  const e = new Error('Lease We lost connection to etcd and our lease has expired. is expired or revoked')
  e.name = 'EtcdLeaseInvalidError'
  t.equal(etcdErrorText(e), 'EtcdLeaseInvalidError: lease expired or revoked (We lost connection to etcd and our lease has expired)')
  const n = new Error('Lease 7587883268532931844 is expired or revoked')
  n.name = 'EtcdLeaseInvalidError'
  t.equal(etcdErrorText(n), 'EtcdLeaseInvalidError: Lease 7587883268532931844 is expired or revoked')
})

t.test('a file with a mistake of every kind: each reported once, with its key and line', async (t) => {
  const yaml = [
    'listen: [udp:127.0.0.1:99999]', //      1 bad listen spec (list item)
    'probe:', //                             2
    '  intervalMs: often', //                3 not an integer
    '  enabld: true', //                     4 unknown nested key
    'rateLimit: {rps: -1, action: slow}', // 5 out of range; not one of
    'logLevels: {proxy: loud}', //           6 map value
    'maskCallId: 1', //                      7 not a boolean
    'secret: short', //                      8 too short
    'trunk: sip:carrier-.example.com', //  9 neither an address nor a host name
    'hep: {id: 5}', //                       10 fine by itself: hep.address missing is a cross-key rule
  ].join('\n')
  const r = load(['--config', 'm.yaml'], {}, { 'm.yaml': yaml })
  t.same(r.errors, [
    'listen[0]: "udp:127.0.0.1:99999" is not proto:host[:port] [advertise host[:port]]: bad port \'99999\' (file m.yaml:1)',
    'probe.intervalMs: "often" must be an integer (file m.yaml:3)',
    'probe.enabld: unknown key (did you mean enabled?) (file m.yaml:4)',
    'rateLimit.rps: -1 is out of range 0..1000000 (file m.yaml:5)',
    'rateLimit.action: "slow" must be one of reply, drop (file m.yaml:5)',
    'logLevels.proxy: "loud" must be one of fatal, error, warn, info, debug, trace, silent (file m.yaml:6)',
    'maskCallId: 1 must be true or false (file m.yaml:7)',
    'secret: must be at least 16 characters (file m.yaml:8)',
    'trunk: "sip:carrier-.example.com": "carrier-.example.com" is neither an IP address nor a host name (file m.yaml:9)',
  ])
})
