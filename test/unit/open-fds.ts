// Descriptor-leak checks for the fuzz tests: this process's descriptors open on files under a folder
// (Linux /proc/self/fd; 0 elsewhere). Counting only the test's own folder, a leak shows while
// descriptors the runtime opens and closes meanwhile do not.
import fs from 'node:fs';

export function openFdsUnder(dir: string): number {
  if (!fs.existsSync('/proc/self/fd')) return 0;
  const real = fs.realpathSync(dir);
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try { return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(real); } catch { return false; }
  }).length;
}

/** Whether openFdsUnder can see descriptors here (false where /proc/self/fd is missing). */
export const canCountFds = (): boolean => fs.existsSync('/proc/self/fd');
