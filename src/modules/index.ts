/** The module registry: task keys (`copy:`, `service:` ...) → modules. */
import type { Module } from '../core/types.js';
import { assertModule } from './assert.js';
import { commandModule, shellModule } from './command.js';
import { copyModule } from './copy.js';
import { fileModule } from './file.js';
import { groupModule } from './group.js';
import { packageModule } from './package.js';
import { serviceModule } from './service.js';
import { sysctlModule } from './sysctl.js';
import { sysfsModule } from './sysfs.js';
import { templateModule } from './template.js';
import { userModule } from './user.js';
import { waitForModule } from './wait_for.js';
import { haTopology } from './ha/ha-topology.js';
import { haService } from './ha/ha-service.js';
import { haSwitchover } from './ha/ha-switchover.js';
import { redisInstall } from './ha/redis-install.js';
import { redisReplication } from './ha/redis-replication.js';
import { redisUnfence } from './ha/redis-unfence.js';
import { redisAuth } from './ha/redis-auth.js';
import { keepalivedReload } from './ha/keepalived-reload.js';

const all: Module<any, any>[] = [
  commandModule,
  shellModule,
  copyModule,
  templateModule,
  fileModule,
  packageModule,
  serviceModule,
  userModule,
  groupModule,
  sysctlModule,
  sysfsModule,
  waitForModule,
  assertModule,
  // The pair: Redis binaries, live topology, replication.
  redisInstall,
  haTopology,
  redisReplication,
  redisUnfence,
  haService,
  haSwitchover,
  redisAuth,
  keepalivedReload,
];

export const modules: ReadonlyMap<string, Module> = new Map(all.map((m) => [m.name, m as Module]));

export { ModuleFailure } from './lib/failure.js';
