/**
 * What the running Node can do, checked before the edge binds anything: an edge asked for more than its
 * runtime offers stops with one clear line rather than quietly doing less (on Node 20, `cluster` with
 * `reusePort: true` silently shares one socket, so N workers would look fine and use one queue).
 */

/** First Node release whose `dgram` and `net` take `reusePort` (nodejs/node PRs 55403 and 55408). */
export const REUSE_PORT_SINCE = '22.12.0'

/** `a >= b` for dotted release numbers ("24.22.3"). */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.replace(/^v/, '').split('.').map(Number)
  const b = min.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x > y
  }
  return true
}

/** Why this Node cannot run `workers` processes on shared ports, or undefined when it can. */
export function runtimeProblem(workers: number, nodeVersion: string = process.versions.node): string | undefined {
  if (workers > 1 && !versionAtLeast(nodeVersion, REUSE_PORT_SINCE)) {
    return (
      `workers: ${workers} needs Node >= ${REUSE_PORT_SINCE} (SO_REUSEPORT for dgram and net); this is Node ${nodeVersion}. ` +
      'Run the project\'s Node (node_modules/.bin/node, which npm scripts and npx use), or set workers: 1'
    )
  }
  return undefined
}
