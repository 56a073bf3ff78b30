// The transaction timers run on a hashed wheel: never early, O(1) arm/disarm, safe to re-arm or disarm
// other timers from inside a callback.
import t from 'tap'
import { TimerWheel, timerFields, type WheelTimer } from '../../src/proxy/timer_wheel.js'

function timer(log: Array<[string, number]>, name: string, onFire?: (now: number) => void): WheelTimer {
  return { ...timerFields(), onTimer: (now) => (log.push([name, now]), onFire?.(now)) }
}

t.test('fires after its delay, never before, at tick resolution', async (t) => {
  const w = new TimerWheel(10, 16)
  const t0 = Date.now()
  w['lastTick'] = t0
  const log: Array<[string, number]> = []
  w.arm(timer(log, 'a'), 35)
  w.arm(timer(log, 'b'), 500) // beyond one turn (160 ms): counted in rounds
  w.advance(t0 + 30)
  t.same(log, [], 'not at 30 ms')
  w.advance(t0 + 40)
  t.same(log.map((x) => x[0]), ['a'], 'a at 40 ms')
  w.advance(t0 + 490)
  t.same(log.map((x) => x[0]), ['a'], 'b not yet at 490 ms')
  w.advance(t0 + 510)
  t.same(log.map((x) => x[0]), ['a', 'b'], 'b after 500 ms')
  t.equal(w.size, 0)
})

t.test('disarm, re-arm from a callback, and disarming a neighbour in the same slot', async (t) => {
  const w = new TimerWheel(10, 16)
  const t0 = Date.now()
  w['lastTick'] = t0
  const log: Array<[string, number]> = []
  const c = timer(log, 'c')
  const b = timer(log, 'b', () => w.disarm(c)) // b and c share a slot; b cancels c while the slot runs
  let again = 0
  const a = timer(log, 'a', () => {
    if (again++ === 0) w.arm(a, 160) // exactly one turn later: must not fire twice in this tick
  })
  w.arm(c, 20)
  w.arm(b, 20)
  w.arm(a, 20)
  const d = timer(log, 'd')
  w.arm(d, 20)
  w.disarm(d)
  w.advance(t0 + 20)
  t.same(log.map((x) => x[0]).sort(), ['a', 'b'], 'c was disarmed by b, d before it was due; a once')
  w.advance(t0 + 190)
  t.same(log.map((x) => x[0]).sort(), ['a', 'a', 'b'], 'a fired again a turn later')
  t.equal(w.size, 0)
})

t.test('a throwing callback does not stop the others', async (t) => {
  const w = new TimerWheel(10, 16)
  const t0 = Date.now()
  w['lastTick'] = t0
  const log: Array<[string, number]> = []
  w.arm(timer(log, 'boom', () => { throw new Error('boom') }), 10)
  w.arm(timer(log, 'ok'), 10)
  w.advance(t0 + 10)
  t.same(log.map((x) => x[0]).sort(), ['boom', 'ok'])
})
