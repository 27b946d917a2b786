/** Inventory: load and resolve the inventory file, select hosts by pattern. */
export { loadInventory, parseInventory, MANAGED_REDIS_KEYS, type LoadInventoryOptions } from './load.js';
export { selectHosts, limitHosts, type PatternWhere } from './patterns.js';
export { inventorySchema } from './schema.js';
