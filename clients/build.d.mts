export interface BundleTarget {
  entry: string;
  out: string;
  launchers: Record<string, string>;
  executable?: boolean;
}
export const BUNDLES: { cli: BundleTarget; action: BundleTarget; task: BundleTarget };
/** A relative path with forward slashes, whatever the OS wrote. */
export function posix(path: string): string;
/** path -> text of every file of the client's dist/. */
export function bundle(target: BundleTarget): Promise<Map<string, string>>;
/** Writes the bundles of one client (or all); returns the paths written. */
export function writeBundles(kind: 'cli' | 'action' | 'task' | 'all'): Promise<string[]>;
