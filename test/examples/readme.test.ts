// README.md stays true to the code: the two first commands, the config table (generated), the metric names.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { FLAGS } from '../../src/edge/config.js'

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
