// Loopback port and polling helpers for tests that start real processes (SIPp, etcd, the edge).
import dgram from 'node:dgram';
import net from 'node:net';

/** A UDP port that was free on `host` a moment ago (the kernel picked it; a race is possible but rare). */
export function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    sock.once('error', reject);
    sock.bind(0, host, () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** A TCP port that was free on `host` a moment ago. */
export function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

/** A port free for both UDP and TCP on `host` (SIP listens on both with one number). */
export async function freePort(host = '127.0.0.1', attempts = 20): Promise<number> {
  for (let i = 0; i < attempts; i++) {
    const port = await freeTcpPort(host);
    if (await udpPortFree(host, port)) return port;
  }
  throw new Error(`no port free for both UDP and TCP on ${host}`);
}

function udpPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    sock.once('error', () => resolve(false));
    sock.bind(port, host, () => sock.close(() => resolve(true)));
  });
}

export interface WaitForOptions { timeoutMs?: number; intervalMs?: number; what?: string }

/** Poll `predicate` until it returns a truthy value (which is returned) or reject after `timeoutMs`. */
export async function waitFor<T>(predicate: () => T | Promise<T>, o: WaitForOptions = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const intervalMs = o.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v;
    } catch (err) {
      lastError = err; // a predicate that throws is "not yet"; the error is kept for the timeout message
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`waitFor ${o.what ?? 'condition'} timed out after ${timeoutMs} ms${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
