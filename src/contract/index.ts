/**
 * The public contract of the kv-lease API (docs: ../../README.md, "API"): the
 * request and resource schemas and their types. The broker validates with
 * them and generates its OpenAPI document from them; the client library and
 * the console import their types. This folder imports nothing but zod
 * (enforced by eslint.config.mjs), so a bundle that imports it carries no
 * broker code.
 */
export { requestSchemas, resourceSchemas } from './registry';
export * from './requests';
export * from './resources';
