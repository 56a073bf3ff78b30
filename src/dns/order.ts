// RFC 2782 target selection: lowest priority first; within one priority, a weighted random draw without
// replacement (weight 0 entries first in the running sum, so they are picked only rarely when others
// weigh more). Drawn for every request, so the load follows the weights; targets that failed recently
// go last (like a backend marked down), still tried when nothing else is left.
import type { Peer } from '../transport/types.js'

export interface Weighted {
  priority: number
  weight: number
  /** The addresses of this target, in order. */
  peers: readonly Peer[]
}

/** The peers to try, in order. `random` returns [0, 1); `demoted` says whether a peer failed recently. */
export function orderTargets(targets: readonly Weighted[], random: () => number, demoted?: (p: Peer) => boolean): Peer[] {
  const out: Peer[] = []
  let i = 0
  while (i < targets.length) {
    let j = i
    while (j < targets.length && targets[j]!.priority === targets[i]!.priority) j++
    if (j - i === 1) pushAll(out, targets[i]!.peers)
    else drawGroup(targets.slice(i, j), random, out)
    i = j
  }
  if (!demoted) return out
  const good: Peer[] = []
  const bad: Peer[] = []
  for (const p of out) (demoted(p) ? bad : good).push(p)
  return bad.length === 0 ? good : good.concat(bad)
}

function drawGroup(group: Weighted[], random: () => number, out: Peer[]): void {
  // RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any order, except that all those with
  // weight 0 are placed at the beginning of the list", then draw by running sums.
  const left = [...group.filter((t) => t.weight === 0), ...group.filter((t) => t.weight > 0)]
  while (left.length > 0) {
    let total = 0
    for (const t of left) total += t.weight
    const pick = Math.floor(random() * (total + 1)) // uniform in [0, total]
    let sum = 0
    let k = 0
    for (; k < left.length - 1; k++) {
      sum += left[k]!.weight
      if (sum >= pick) break
    }
    pushAll(out, left[k]!.peers)
    left.splice(k, 1)
  }
}

function pushAll(out: Peer[], peers: readonly Peer[]): void {
  for (const p of peers) out.push(p)
}
