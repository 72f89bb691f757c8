import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { parse, parseDocument } from 'yaml';

export const REPO = resolve(__dirname, '../..');

/** The published schemas, copied into the repository (sources and licences in its README). */
export const SCHEMAS = resolve(REPO, 'test/fixtures/schemas');

export function repoPath(...parts: string[]): string {
  return resolve(REPO, ...parts);
}

export function readText(...parts: string[]): string {
  return readFileSync(repoPath(...parts), 'utf8');
}

export function exists(...parts: string[]): boolean {
  return existsSync(repoPath(...parts));
}

export function readSchema(name: string): Record<string, unknown> {
  const path = resolve(SCHEMAS, name);
  if (!existsSync(path)) {
    throw new Error(`Schema ${path} is missing: see test/fixtures/README.md.`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** YAML with the core schema: booleans and numbers typed, as GitHub reads action.yml. */
export function readYaml(...parts: string[]): unknown {
  return parse(readText(...parts));
}

/**
 * YAML with every scalar a string, as Azure Pipelines reads a pipeline (and
 * as its schema describes it: `boolean` there is the strings true/false/yes/...).
 */
export function readYamlAsStrings(...parts: string[]): unknown {
  const document = parseDocument(readText(...parts), { schema: 'failsafe' });
  if (document.errors.length > 0) {
    throw new Error(document.errors.map((error) => error.message).join('\n'));
  }
  return document.toJS() as unknown;
}

/**
 * Ajv for schemas published for editors: not strict (they carry editor-only
 * keywords such as `deprecationMessage` or `ignoreCase`), formats not checked,
 * and patterns compiled without the `u` flag (the Azure Pipelines schema has
 * escapes like `\:` that are only valid outside unicode mode).
 */
export function editorAjv(options: { coerceTypes?: boolean } = {}): Ajv {
  return new Ajv({
    strict: false,
    allErrors: true,
    validateFormats: false,
    unicodeRegExp: false,
    coerceTypes: options.coerceTypes ?? false,
  });
}

export function describeErrors(validate: ValidateFunction): string {
  return formatErrors(validate.errors);
}

export function formatErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 20)
    .map(
      (error) =>
        `${error.instancePath || '/'} ${error.message ?? ''} ${JSON.stringify(error.params)}`,
    )
    .join('\n');
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (!isRecord(value)) throw new Error(`${what} is not a mapping`);
  return value;
}

export function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a sequence`);
  return value as unknown[];
}

export function asString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new Error(`${what} is not a string`);
  return value;
}
