// `sipedge demo` is the README's first command: it must carry its calls, show the failover and find no leak.
import { Writable } from 'node:stream'
import t from 'tap'
import { runDemo } from '../../src/edge/demo.js'

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk))
      done()
    },
  })
  return { stream, text: () => chunks.join('') }
}

for (const variant of [[], ['--no-sipp']]) {
  t.test(`demo ${variant.join(' ') || '(SIPp backends)'}`, async (t) => {
    const out = capture()
    const code = await runDemo(['--calls', '40', '--rate', '40', ...variant], out.stream)
    const text = out.text()
    t.equal(code, 0, 'exit code 0')
    t.match(text, /calls completed {4}40 of 40\n/, 'every call completed')
    t.match(text, /127\.0\.1\.1:5080 20, 127\.0\.1\.2:5080 20, 127\.0\.1\.3:5080 0/, 'calls spread, none on the 503 backend')
    t.match(text, /failovers {10}(1[0-9]|20) /, 'a third to a half of the INVITEs failed over (fewer when a loaded machine lets the 503 backend go probing)')
    t.match(text, /setup time {9}p50 \d+ ms, p99 \d+ ms/)
    t.match(text, /no internal address leaked \(160 messages/, 'no leak in 160 messages')
  })
}

t.test('demo with its port taken: one line with the way out (--port), no stack trace, exit 1', async (t) => {
  const { createSocket } = await import('node:dgram')
  const taken = createSocket('udp4')
  await new Promise<void>((r) => taken.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => taken.close())
  const out = capture()
  const err = capture()
  const code = await runDemo(['--calls', '1', '--no-sipp', '--port', String(taken.address().port)], out.stream, err.stream)
  t.equal(code, 1)
  t.match(err.text(), /^sipedge demo: cannot listen on udp:127\.0\.0\.1:\d+ \(public\): EADDRINUSE\n {2}a port the demo needs is taken: pick a free one for the edge with --port/)
  t.notMatch(err.text(), /\n\s+at /, 'no stack trace')
})
