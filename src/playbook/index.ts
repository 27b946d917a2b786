/** Playbooks: load (with imports) and validate against an inventory and the module registry. */
export { forgetLoadedPlaybooks, isStored, loadPlaybook, originOf, type LoadOptions, type Origin, type PlaybookStore, type StoredPlaybook } from './load.js';
export { validatePlaybook, templateCandidates, RUNTIME_VARIABLES, type ValidateOptions } from './validate.js';
export { playbookSchema, TASK_KEYS } from './schema.js';
