// The published package works on its own: `npm pack`, extract, and run the binary from the extracted copy
// (its node_modules linked to the repo's: tests run offline, no registry).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

const work = mkdtempSync(join(tmpdir(), 'sipedge-pack-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: opts.timeoutMs ?? 15_000 })
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '', error: r.error }
}

// `npm ci` builds dist/ (prepare); build here only when it is missing, and pack without re-running scripts.
if (!existsSync(join(ROOT, 'dist/edge/cli.js'))) {
  const b = run('npm', ['run', 'build'], { timeoutMs: 120_000 })
  if (b.code !== 0) throw new Error(`npm run build failed:\n${b.out}${b.err}`)
}
const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work])
const packed = pack.code === 0 ? (JSON.parse(pack.out) as Array<{ filename: string; files: Array<{ path: string }> }>)[0] : undefined
const pkg = join(work, 'package')
const cli = join(pkg, 'dist/edge/cli.js')

t.test('npm pack makes a tarball with the library, the binary and the SIPp scenarios', async (t) => {
  t.equal(pack.code, 0, `npm pack exits 0 ${pack.err}`)
  if (!packed) return
  t.equal(packed.filename, `sipedge-${VERSION}.tgz`)
  const tar = run('tar', ['-tzf', join(work, packed.filename)])
  t.equal(tar.code, 0)
  const files = new Set(tar.out.split('\n').filter(Boolean))
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/edge/cli.js', 'bench/sipp/uac.xml', 'bench/sipp/uas.xml', 'README.md', 'package.json']) {
    t.ok(files.has(`package/${f}`), `contains ${f}`)
  }
  t.notOk([...files].some((f) => f.startsWith('package/src/') || f.startsWith('package/test/')), 'no sources or tests shipped')
  t.equal(run('tar', ['-xzf', join(work, packed.filename), '-C', work]).code, 0, 'extracts')
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir')
})

t.test('the extracted binary answers --version and --help', async (t) => {
  const v = run(process.execPath, [cli, '--version'])
  t.equal(v.code, 0, v.err)
  t.equal(v.out.trim(), VERSION)
  const h = run(process.execPath, [cli, '--help'])
  t.equal(h.code, 0, h.err)
  for (const flag of ['--listen', '--backend', '--secret', '--etcd', '--admin', '--[no-]mask-call-id', '--[no-]probe', '--shutdown-timeout-ms']) {
    t.match(h.out, flag, `--help lists ${flag}`)
  }
  t.match(h.out, /SIPEDGE_SECRET/, '--help names the environment variables')
})

t.test('the extracted library imports by its package name', async (t) => {
  const r = run(process.execPath, ['--input-type=module', '-e', "import('sipedge').then((m) => console.log(typeof m.createEdge, m.VERSION))"], {
    cwd: join(pkg, 'dist'),
  })
  // Resolved through the package's own "exports" (self-reference) from inside the package.
  t.equal(r.code, 0, r.err)
  t.equal(r.out.trim(), `function ${VERSION}`)
})

t.test('demo --calls 10 --rate 20 --no-sipp completes from the extracted package', async (t) => {
  // The demo binds 127.0.1.1-3:5080; a private network namespace keeps it clear of tests running alongside.
  const isolated = spawnSync('unshare', ['--net', 'true']).status === 0
  const args = [cli, 'demo', '--calls', '10', '--rate', '20', '--no-sipp']
  const r = isolated
    ? run('unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...args], { timeoutMs: 20_000 })
    : run(process.execPath, args, { timeoutMs: 20_000 })
  t.equal(r.code, 0, r.code === 0 ? 'demo exits 0' : `demo failed:\n${r.out}${r.err}`)
  t.match(r.out, /calls completed {4}10 of 10\n/)
  t.match(r.out, /no internal address leaked/)
})
