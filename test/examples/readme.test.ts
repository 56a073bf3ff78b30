// README.md stays true to the code: the two first commands, the config table (generated), the metric names.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { FLAGS } from '../../src/edge/config.js'
import { freeUdpPort } from '../helpers/net.js'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')

t.test('the demo and test commands are the first two code blocks', async (t) => {
  const blocks = [...readme.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]!.trim())
  t.equal(blocks[0], 'npm ci && npx sipedge demo')
  t.match(blocks[1], /npm ci && npm test$/)
  const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8')
  t.ok(ci.includes(blocks[1]!), '.ci/run runs the README test line')
})

t.test('the configuration table lists every flag and matches scripts/config-table.mjs', async (t) => {
  for (const f of FLAGS) t.ok(readme.includes(`| \`${f.key}\` |`) && readme.includes(`\`${f.env}\``), `${f.key} documented`)
  if (!existsSync(join(ROOT, 'dist/edge/config.js'))) return t.fail('dist/ missing: npm run build')
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/config-table.mjs')], { encoding: 'utf8', timeout: 10_000 })
  t.equal(r.status, 0, r.stderr)
  t.ok(readme.includes(r.stdout.trim()), 'README has the current output of scripts/config-table.mjs')
})

t.test('every metric of src/edge/metrics.ts is documented', async (t) => {
  const src = readFileSync(join(ROOT, 'src/edge/metrics.ts'), 'utf8')
  const names = new Set([...src.matchAll(/'(sipedge_[a-z_]+)'/g)].map((m) => m[1]!))
  t.ok(names.size > 10)
  for (const n of names) t.ok(readme.includes(`\`${n}`) || readme.includes(`${n}\``), `${n} in README`)
})

t.test('the library snippet type-checks under exactOptionalPropertyTypes and runs without SIPEDGE_SECRET', async (t) => {
  const section = readme.slice(readme.indexOf('## Library API'))
  const snippet = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  if (!snippet) return t.fail('no ts block in the Library API section')
  // Inside the package, so that `import ... from 'sipedge'` resolves to this checkout (self-reference).
  const dir = mkdtempSync(join(ROOT, 'test/examples/.snippet-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'snippet.mts')
  const port = await freeUdpPort('127.0.15.1')
  writeFileSync(file, snippet.replace('udp:127.0.0.1:5060', `udp:127.0.15.1:${port}`) + '\nawait edge.stop()\n')
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--exactOptionalPropertyTypes',
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', file], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 })
  t.equal(tsc.status, 0, `tsc: ${tsc.stdout}${tsc.stderr}`)
  const env = { ...process.env }
  delete env.SIPEDGE_SECRET
  const run = spawnSync(process.execPath, ['--import', '@tapjs/typescript/import', file], { encoding: 'utf8', cwd: ROOT, env, timeout: 30_000 })
  t.equal(run.status, 0, run.stderr)
  t.match(run.stdout, /secret: not set, using a random one/, 'a generated secret, with the warning')
})

t.test('long-running commands in the docs run the binary, not npx (npx does not pass SIGTERM on)', async (t) => {
  const docs = ['README.md', 'examples/asterisk-sidecar/README.md', 'examples/asterisk-sidecar/entrypoint.sh', 'examples/sipedge.yaml', 'examples/docker-compose/README.md']
  for (const d of docs) {
    const text = readFileSync(join(ROOT, d), 'utf8')
    const bad = text.split('\n').filter((l) => /npx (--[a-z-]+ )*sipedge (register|--listen|--etcd|--config|--backend)/.test(l) && !/grandchild|never/.test(l))
    t.same(bad, [], d)
  }
})

t.test("the README's two-sided YAML passes check-config (and binds: test/edge/live_ops.test.ts runs its loopback twin)", async (t) => {
  const section = readme.slice(readme.indexOf('### Two-sided setup'))
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1]
  if (!yaml) return t.fail('no yaml block in the two-sided section')
  const { loadConfig } = await import('../../src/edge/config.js')
  const r = loadConfig({ argv: ['--config', 'two-sided.yaml'], env: { SIPEDGE_SECRET: 'readme-two-sided-0123' }, readFile: () => yaml })
  t.same(r.errors, [])
  t.same(r.config.internalListen, ['udp:10.0.0.2:5060'])
})
