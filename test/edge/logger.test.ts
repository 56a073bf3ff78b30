import t from 'tap'
import { Writable } from 'node:stream'
import { LogOnce, applyLogLevels, componentLogger, createLogger, levelFor } from '../../src/edge/logger.js'

/** A pino destination collecting parsed JSON lines. */
function sink() {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  return { lines, stream }
}

t.test('JSON lines, component children with their own levels, live level changes', async (t) => {
  const { lines, stream } = sink()
  const config = { logLevel: 'info' as const, logLevels: { proxy: 'debug' as const, dispatch: 'error' as const } }
  const log = createLogger(config, stream)
  const proxy = componentLogger(log, config, 'proxy')
  const dispatch = componentLogger(log, config, 'dispatch')
  t.equal(componentLogger(log, config, 'proxy'), proxy, 'one child per component')
  t.equal(levelFor(config, 'etcd'), 'info')

  proxy.debug({ callId: 'abc@x', backend: 'default/127.0.1.1:5080' }, 'call routed')
  dispatch.warn('filtered out')
  dispatch.error('kept')
  log.debug('filtered out')
  log.info({ config: { secret: 's3cr3t-value', etcd: { password: 'pw' } }, adminToken: 'tok' }, 'config')
  await new Promise((r) => setImmediate(r))
  t.equal(lines.length, 3)
  t.match(lines[0], { level: 20, component: 'proxy', callId: 'abc@x', backend: 'default/127.0.1.1:5080', msg: 'call routed', name: 'sipedge' })
  t.match(lines[1], { level: 50, component: 'dispatch', msg: 'kept' })
  t.match(lines[2], { config: { secret: '[redacted]', etcd: { password: '[redacted]' } }, adminToken: '[redacted]' }, 'secrets redacted')
  t.type(lines[0]!.time, 'string', 'ISO timestamps')

  applyLogLevels(log, { logLevel: 'warn', logLevels: { dispatch: 'debug' } })
  t.equal(log.level, 'warn')
  t.equal(proxy.level, 'warn', 'a component without its own level follows the global one')
  t.equal(dispatch.level, 'debug')
})

t.test('LogOnce: once per key per window, bounded, counts what it suppressed', async (t) => {
  const { lines, stream } = sink()
  const log = createLogger({ logLevel: 'info', logLevels: {} }, stream)
  let now = 1000
  const once = new LogOnce(log, 100, 60_000, () => now)
  t.equal(once.warn('1.2.3.4:5060', { source: '1.2.3.4:5060' }, 'parse error'), true)
  for (let i = 0; i < 50; i++) t.equal(once.warn('1.2.3.4:5060', { source: '1.2.3.4:5060' }, 'parse error'), false)
  t.equal(once.error('other', {}, 'x'), true)
  now += 60_000
  t.equal(once.warn('1.2.3.4:5060', { source: '1.2.3.4:5060' }, 'parse error'), true, 'logs again after the window')
  // A flood from 10k spoofed sources keeps at most `max` keys.
  for (let i = 0; i < 10_000; i++) once.warn(`10.0.${i >> 8}.${i & 255}:5060`, {}, 'flood')
  t.equal(once.size, 100, 'bounded by max')
  await new Promise((r) => setImmediate(r))
  t.match(lines[0], { level: 40, msg: 'parse error', source: '1.2.3.4:5060' })
  t.notOk('suppressed' in lines[0]!)
  t.match(lines[1], { level: 50, msg: 'x' })
  t.match(lines[2], { msg: 'parse error', suppressed: 50 })
  t.equal(lines.length, 3 + 10_000, 'distinct keys each log once')
})
