import type { KeptConnections } from '../connection/keep.js';

/**
 * Where a command's output goes and what it reads (run.ts's Io): this process's own streams, or a
 * client's when the keeper (keeper.ts) runs the command for it.
 */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Calls `handler` on each Ctrl-C (or TERM) until the returned function is called; default: this process's signals. */
  onInterrupt?: (handler: () => void) => () => void;
  /** Connections kept between runs (the keeper, keeper.ts); without it every run connects afresh. */
  keep?: KeptConnections;
  /**
   * stdout stands for a client's terminal (keeper.ts): the listr2 display draws on it although
   * this process's own stdout is no terminal.
   */
  terminal?: boolean;
}
