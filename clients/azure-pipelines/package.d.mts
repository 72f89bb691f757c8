/** Writes the extension's files into `dir`; returns its task folder. */
export function stage(dir: string): Promise<string>;
/** Builds the .vsix (default dist/ado/<id>-<version>.vsix) and returns its path. */
export function packageExtension(output?: string): Promise<string>;
