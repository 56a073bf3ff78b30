// etcd, when configured: backend discovery under its prefix and, with the defence on, bans shared between edges.
// Both clients are loaded only then: the etcd client (gRPC, protobufjs) costs ~40 MB and start-up time.
import type { Logger } from 'pino'
import type { Defence } from '../defence/defence.js'
import type { SharedBans } from '../defence/shared.js'
import type { EtcdSource } from '../discovery/etcd_source.js'
import type { Dispatcher } from '../dispatch/dispatcher.js'
import type { EdgeConfig } from './config.js'
import { etcdConnection } from './config_inputs.js'
import { componentLogger } from './logger.js'

export async function startEtcd(c: EdgeConfig, dispatcher: Dispatcher, defence: Defence | undefined, log: Logger): Promise<{ etcd?: EtcdSource; sharedBans?: SharedBans }> {
  const e = c.etcd
  if (!e) return {}
  const { EtcdSource } = await import('../discovery/etcd_source.js')
  const etcd = new EtcdSource(dispatcher, { endpoints: e.endpoints, prefix: e.prefix, logger: componentLogger(log, c, 'etcd'), ...etcdConnection(e) })
  void etcd.start()
  if (!defence) return { etcd }
  const { SharedBans } = await import('../defence/shared.js')
  const sharedBans = new SharedBans(defence, { endpoints: e.endpoints, prefix: c.defence.etcdPrefix, logger: componentLogger(log, c, 'defence'), ...etcdConnection(e) })
  void sharedBans.start()
  return { etcd, sharedBans }
}
