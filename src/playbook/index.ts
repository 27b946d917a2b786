/** Playbooks: load (with imports) and validate against an inventory and the module registry. */
export { loadPlaybook, originOf, type Origin } from './load.js';
export { validatePlaybook, templateCandidates, RUNTIME_VARIABLES, type ValidateOptions } from './validate.js';
export { playbookSchema, TASK_KEYS } from './schema.js';
