export interface BundleTarget {
  entry: string;
  out: string;
  launchers: Record<string, string>;
}
export const BUNDLES: { action: BundleTarget; task: BundleTarget };
/** A relative path with forward slashes, whatever the OS wrote. */
export function posix(path: string): string;
/** path -> text of every file of the client's dist/. */
export function bundle(target: BundleTarget): Promise<Map<string, string>>;
export function writeBundles(kind: 'action' | 'task' | 'all'): Promise<void>;
