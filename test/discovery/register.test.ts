// `sipedge register` against a real etcd: key under a lease, re-registration after lease loss, drain
// (draining state, waiting on a calls command or an edge admin API, deadline), then revoke.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { parseRegisterArgs, register, runRegister, type RegisterOptions } from '../../src/discovery/register.js'
import { freePort, startEtcd, waitFor } from '../helpers/etcd.js'

const etcd = await startEtcd()
t.teardown(() => etcd.cleanup())
const admin = new Etcd3({ hosts: etcd.endpoint })
t.teardown(() => admin.close())
const dir = mkdtempSync(join(tmpdir(), 'sipedge-register-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

function logCapture() {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
  return { lines, logger, msgs: () => lines.map((l) => String(l.msg)) }
}

async function readKey(key: string) {
  const res = await admin.get(key).exec()
  const kv = res.kvs[0]
  if (!kv) return undefined
  return { value: JSON.parse(kv.value.toString()) as Record<string, unknown>, lease: kv.lease }
}

/** Runs register() in-process; returns the promise of its exit code and the abort function (= SIGTERM). */
function start(opts: Partial<RegisterOptions> & { uri: string }) {
  const controller = new AbortController()
  const { logger, msgs, lines } = logCapture()
  const done = register({ endpoints: [etcd.endpoint], set: 'default', ttl: 2, logger, ...opts }, controller.signal)
  t.teardown(async () => {
    controller.abort()
    await done
  })
  return { done, stop: () => controller.abort(), msgs, lines }
}

t.test('parseRegisterArgs', async (t) => {
  t.equal(parseRegisterArgs(['--help']), 'help')
  const o = parseRegisterArgs(
    ['--etcd', 'http://127.0.0.1:1,http://127.0.0.1:2', '--set', 's', '--uri', 'sip:127.0.1.1:5080', '--weight', '3', '--ttl', '5',
      '--edge-admin', 'http://127.0.0.1:8080', '--drain-timeout', '7', '--username', 'u', '--cacert', '/ca.pem'],
    { SIPEDGE_ETCD_PASSWORD: 'pw' },
  )
  t.match(o, {
    endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
    set: 's',
    weight: 3,
    priority: 0,
    ttl: 5,
    edgeAdmin: ['http://127.0.0.1:8080'],
    drainTimeoutMs: 7000,
    auth: { username: 'u', password: 'pw' },
    tls: { ca: '/ca.pem' },
  })
  t.throws(() => parseRegisterArgs(['--set', 's', '--uri', 'sip:127.0.0.1']), /--etcd is required/)
  t.throws(() => parseRegisterArgs(['--etcd', 'http://x:1', '--set', 's', '--uri', 'sip:127.0.0.1', '--weight', 'x']), /--weight must be/)
  t.throws(() => parseRegisterArgs(['--etcd', 'http://x:1', '--set', 's', '--uri', 'u', '--bogus']), /bogus/)
  t.throws(() => parseRegisterArgs(['--etcd', 'http://x:1', '--set', 's', '--uri', 'u', '--username', 'u'], {}), /--password/)
})

t.test('runRegister: --help prints usage, bad flags and bad options exit 2', async (t) => {
  let out = ''
  let err = ''
  const io = { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), logger: logCapture().logger }
  t.equal(await runRegister(['--help'], io), 0)
  t.match(out, /Usage: sipedge register --etcd/)
  t.equal(await runRegister(['--set', 'x'], io), 2)
  t.match(err, /--etcd is required/)
  t.equal(await runRegister(['--etcd', etcd.endpoint, '--set', 'x', '--uri', 'sip:asterisk:5060'], io), 2, 'hostname URI refused')
  t.equal(await runRegister(['--etcd', etcd.endpoint, '--set', 'x', '--uri', 'sip:127.0.0.1', '--ttl', '1'], io), 2, 'ttl too short')
})

t.test('registers under a lease; SIGTERM marks draining, waits for calls, revokes', async (t) => {
  const calls = join(dir, 'calls1')
  writeFileSync(calls, '2 active calls\n5 calls processed\n')
  const r = start({ uri: 'sip:127.0.1.1:5080', weight: 2, extra: { zone: 'a' }, callsCommand: `cat ${calls}`, pollMs: 50 })
  const key = '/sipedge/backends/default/127.0.1.1:5080'
  const first = await waitFor('key registered', () => readKey(key))
  t.same(first.value, { zone: 'a', uri: 'sip:127.0.1.1:5080', weight: 2, priority: 0, state: 'active' })
  t.not(first.lease, '0', 'key is attached to a lease')
  const ttl = await admin.leaseClient.leaseTimeToLive({ ID: first.lease })
  t.ok(Number(ttl.grantedTTL) === 2, `lease granted ttl ${ttl.grantedTTL}`)

  // The lease is kept alive past its TTL.
  await new Promise((r) => setTimeout(r, 2500))
  t.same((await readKey(key))?.lease, first.lease, 'still registered after the TTL: keep-alive works')

  r.stop() // what SIGTERM does
  await waitFor('draining', async () => (await readKey(key))?.value.state === 'draining')
  await new Promise((r) => setTimeout(r, 200))
  t.ok(await readKey(key), 'still registered while calls are active')
  writeFileSync(calls, '0 active calls\n7 calls processed\n')
  t.equal(await r.done, 0, 'exit code 0')
  t.equal(await readKey(key), undefined, 'key gone')
  const after = await admin.leaseClient.leaseTimeToLive({ ID: first.lease })
  t.equal(after.TTL, '-1', 'lease revoked')
  t.match(r.msgs(), ['registering backend', 'registered', 'draining: no new calls will be sent here', 'active calls', 'active calls', 'deregistered: lease revoked'])
})

t.test('a lost lease (revoked behind our back) is re-created with the key', async (t) => {
  const r = start({ uri: 'sip:127.0.1.2:5080', id: 'ast-2' })
  const key = '/sipedge/backends/default/ast-2'
  const first = await waitFor('key registered', () => readKey(key))
  const revokedAt = Date.now()
  await admin.leaseClient.leaseRevoke({ ID: first.lease })
  const again = await waitFor('re-registered with a new lease', async () => {
    const k = await readKey(key)
    return k && k.lease !== first.lease ? k : undefined
  }, 5000)
  t.comment(`re-registered ${Date.now() - revokedAt} ms after the lease was revoked`)
  t.equal(again.value.state, 'active')
  t.ok(r.msgs().includes('lease lost: registering again'))
  r.stop()
  t.equal(await r.done, 0)
  t.equal(await readKey(key), undefined)
})

t.test('survives an etcd crash and restart: the key is there again and kept alive', async (t) => {
  const r = start({ uri: 'sip:127.0.1.6:5080', ttl: 3 })
  const key = '/sipedge/backends/default/127.0.1.6:5080'
  await waitFor('registered', () => readKey(key))
  etcd.kill('SIGKILL')
  await etcd.restart()
  await waitFor('registered after restart', () => readKey(key), 5000)
  await new Promise((r) => setTimeout(r, 3500))
  t.ok(await readKey(key), 'still registered one TTL after the restart')
  r.stop()
  t.equal(await r.done, 0)
  t.equal(await readKey(key), undefined)
})

t.test('drains on the edge admin API, and gives up at the deadline', async (t) => {
  let active = 1
  const srv = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(req.url === '/backends' ? { backends: [{ uri: 'sip:127.0.1.3:5080', activeCalls: active }, { uri: 'sip:127.0.1.9:5080', activeCalls: 9 }] } : {}))
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  const edge = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`

  const r1 = start({ uri: 'sip:127.0.1.3:5080', edgeAdmin: [edge], pollMs: 50, drainTimeoutMs: 10_000 })
  await waitFor('registered', () => readKey('/sipedge/backends/default/127.0.1.3:5080'))
  r1.stop()
  await waitFor('draining', async () => (await readKey('/sipedge/backends/default/127.0.1.3:5080'))?.value.state === 'draining')
  await waitFor('polling the edge', () => r1.lines.some((l) => l.msg === 'active calls' && l.calls === 1))
  active = 0
  t.equal(await r1.done, 0)
  t.equal(await readKey('/sipedge/backends/default/127.0.1.3:5080'), undefined)

  const r2 = start({ uri: 'sip:127.0.1.9:5080', edgeAdmin: [edge], pollMs: 50, drainTimeoutMs: 300 })
  await waitFor('registered', () => readKey('/sipedge/backends/default/127.0.1.9:5080'))
  const stoppedAt = Date.now()
  r2.stop()
  t.equal(await r2.done, 0)
  const took = Date.now() - stoppedAt
  t.ok(took >= 300 && took < 3000, `gave up after the deadline (${took} ms)`)
  t.ok(r2.msgs().includes('drain deadline reached with calls possibly active'))
  t.equal(await readKey('/sipedge/backends/default/127.0.1.9:5080'), undefined, 'revoked anyway')
})

t.test('etcd unreachable: keeps retrying, and a SIGTERM still exits 0 promptly', async (t) => {
  const port = await freePort()
  const controller = new AbortController()
  const { logger, msgs } = logCapture()
  const done = register({ endpoints: [`http://127.0.0.1:${port}`], set: 'default', uri: 'sip:127.0.1.4:5080', ttl: 2, logger }, controller.signal)
  await waitFor('two failed attempts', () => msgs().filter((m) => m === 'registration failed: retrying').length >= 2, 5000)
  const stoppedAt = Date.now()
  controller.abort()
  t.equal(await done, 0)
  t.ok(Date.now() - stoppedAt < 3000, 'exits promptly')
  t.ok(msgs().includes('deregistered (no live lease)'))
})

t.test('runRegister end to end with a real SIGTERM to this process', async (t) => {
  const { logger, msgs } = logCapture()
  const baseline = process.listenerCount('SIGTERM') // tap has its own
  const baselineInt = process.listenerCount('SIGINT')
  const args = ['--etcd', etcd.endpoint, '--set', 'sig', '--uri', 'sip:127.0.1.5:5080', '--ttl', '2', '--calls-command', 'echo 4 active calls']
  const done = runRegister(args, { logger })
  const key = '/sipedge/backends/sig/127.0.1.5:5080'
  await waitFor('registered', () => readKey(key))
  t.equal(process.listenerCount('SIGTERM'), baseline + 1, 'handler installed')
  process.kill(process.pid, 'SIGTERM')
  await waitFor('draining', async () => (await readKey(key))?.value.state === 'draining')
  await waitFor('waiting on 4 calls', () => msgs().includes('active calls'))
  const secondAt = Date.now()
  process.kill(process.pid, 'SIGINT') // a second signal stops the wait (default drain timeout is 60 s)
  t.equal(await done, 0)
  t.ok(Date.now() - secondAt < 2500, 'exits promptly after the second signal')
  t.ok(msgs().includes('second signal: not waiting for calls any longer'))
  t.equal(await readKey(key), undefined, 'deregistered')
  t.ok(msgs().includes('signal received'))
  t.equal(process.listenerCount('SIGTERM'), baseline, 'SIGTERM handler removed')
  t.equal(process.listenerCount('SIGINT'), baselineInt, 'SIGINT handler removed')
})
