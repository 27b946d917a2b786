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
  onInterrupt?: (handler: () => void) => () => void;
  keep?: KeptConnections;
}
