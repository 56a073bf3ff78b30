// Runs the sipedge CLI inside this process so that a harness can ask for the edge's heap over IPC
// (process.memoryUsage after a full GC). Usage: node --expose-gc edge-host.mjs <cli.js> [cli args...]
import { pathToFileURL } from 'node:url'

const [cliPath, ...cliArgs] = process.argv.slice(2)
process.argv = [process.argv[0], cliPath, ...cliArgs]

process.on('message', (msg) => {
  if (msg?.type !== 'mem') return
  if (typeof globalThis.gc === 'function') globalThis.gc()
  process.send?.({ type: 'mem', mem: process.memoryUsage() })
})
// Without this the IPC channel alone would keep a crashed edge's host alive.
process.channel?.unref()

await import(pathToFileURL(cliPath).href)
