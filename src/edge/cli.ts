#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { VERSION } from '../version.js'

const USAGE = `sipedge ${VERSION} — SIP edge dispatcher

Usage:
  sipedge [options]            run the edge
  sipedge demo                 run an edge with stand-in backends and drive calls through it

Options:
  -h, --help                   print this help
  -v, --version                print the version
`

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  })
  if (values.version) {
    process.stdout.write(`${VERSION}\n`)
    return 0
  }
  process.stdout.write(USAGE)
  return 0
}

process.exitCode = main(process.argv.slice(2))
