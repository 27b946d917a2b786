/**
 * Tag selection, Ansible's rules: a play's tags apply to its tasks; `always` runs unless skipped
 * explicitly (`--skip-tags always` or one of its other tags); `never` runs only when one of its
 * tags is asked for by name; `--tags all|tagged|untagged` and `--skip-tags tagged|untagged` work as
 * in Ansible.
 */

export interface TagFilter {
  /** `--tags`: when absent or empty, everything except `never` tasks is selected. */
  only?: readonly string[];
  /** `--skip-tags`. */
  skip?: readonly string[];
}

/** Whether a task with these effective tags (task ∪ play) runs under the filter. */
export function selectedByTags(tags: readonly string[], filter: TagFilter): boolean {
  const set = new Set(tags);
  const only = filter.only?.filter((t) => t !== '') ?? [];
  const skip = filter.skip?.filter((t) => t !== '') ?? [];
  const real = [...set].filter((t) => t !== 'always' && t !== 'never');

  if (skip.length > 0) {
    if (tags.some((t) => skip.includes(t))) return false;
    if (skip.includes('tagged') && real.length > 0) return false;
    if (skip.includes('untagged') && real.length === 0) return false;
  }

  // `never` wins over everything but an explicit request for one of the task's tags.
  if (set.has('never')) return only.some((t) => set.has(t));
  if (set.has('always')) return true;
  if (only.length === 0) return true;
  if (only.some((t) => set.has(t))) return true;
  if (only.includes('all')) return true;
  if (only.includes('tagged') && real.length > 0) return true;
  if (only.includes('untagged') && real.length === 0) return true;
  return false;
}
