/** The configuration lives in src/config/ (see its index.ts); this path stays for existing imports. */
export * from '../config/index.js'
