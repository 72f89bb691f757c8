/**
 * Parsing of step inputs shared by the GitHub action and the Azure Pipelines
 * task: both receive every input as a string.
 */

export class InputError extends Error {
  override name = 'InputError';
}

/** '' -> undefined (the broker's default); otherwise a whole number of seconds. */
export function optionalSeconds(name: string, value: string): number | undefined {
  const text = value.trim();
  if (text === '') return undefined;
  if (!/^\d+$/.test(text))
    throw new InputError(`${name} must be a whole number of seconds, got '${value}'`);
  return Number(text);
}

export function seconds(name: string, value: string, fallback: number): number {
  return optionalSeconds(name, value) ?? fallback;
}

/** YAML 1.2 core booleans, as `core.getBooleanInput` and Azure Pipelines read them. */
export function flag(name: string, value: string, fallback: boolean): boolean {
  const text = value.trim();
  if (text === '') return fallback;
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  throw new InputError(`${name} must be true or false, got '${value}'`);
}

/** Required; the client library checks the rest (https, or http on loopback). */
export function required(name: string, value: string, what: string): string {
  const text = value.trim();
  if (text === '') throw new InputError(`${name} is required: ${what}`);
  return text;
}

/** A target's name as the contract takes it (TargetName): letters, digits and inner hyphens. */
export function targetName(label: string, value: string): string {
  const text = value.trim();
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(text)) {
    throw new InputError(
      `${label} must be the name of a vault, storage account or SQL server (1-63 letters, ` +
        `digits and inner hyphens), got '${value}'`,
    );
  }
  return text;
}
