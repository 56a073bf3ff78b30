// The example softphone (examples/webrtc/) served by the admin server at a path of the operator's choice
// (`adminWebrtcPage`, off by default), with SIP.js's ES modules under `<path>sip.js/`. Static files only,
// read from disk per request (off the SIP hot path), and nothing outside the two directories.
import { readFile } from 'node:fs/promises'
import { dirname, extname, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
}

export interface PageFile {
  status: number
  type: string
  body: Buffer
  /** Set on the redirect from the path without its trailing slash (relative imports need it). */
  location?: string
}

export interface WebrtcPage {
  /** The file for a request path under the page's path, or undefined when the path is not ours. */
  get(path: string): Promise<PageFile | undefined>
}

/** Throws when SIP.js is not installed (it is a dev dependency of sipedge; `npm install sip.js` next to it). */
export function webrtcPage(at: string): WebrtcPage {
  const base = at.endsWith('/') ? at : `${at}/`
  const pageDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples/webrtc')
  let sipDir: string
  try {
    sipDir = dirname(fileURLToPath(import.meta.resolve('sip.js')))
  } catch {
    throw new Error('adminWebrtcPage: the sip.js package is not installed (npm install sip.js)')
  }
  return {
    async get(path) {
      if (path === base.slice(0, -1)) return { status: 301, type: 'text/plain; charset=utf-8', body: Buffer.alloc(0), location: base }
      if (!path.startsWith(base)) return undefined
      const rel = path.slice(base.length) || 'index.html'
      const [root, file] = rel.startsWith('sip.js/') ? [sipDir, rel.slice(7)] : [pageDir, rel]
      const full = resolve(root, file)
      const type = TYPES[extname(full)]
      if (!full.startsWith(root + sep) || type === undefined) return notFound()
      try {
        return { status: 200, type, body: await readFile(full) }
      } catch {
        return notFound()
      }
    },
  }
}

function notFound(): PageFile {
  return { status: 404, type: 'text/plain; charset=utf-8', body: Buffer.from('not found\n') }
}
