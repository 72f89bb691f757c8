import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';

import { openApiDocument } from '../../src/api/openapi';
import { routes } from '../../src/api/routes';

/**
 * Contract §5: every answer of the API validates against the schema the
 * OpenAPI document declares for its operation and status. The test helpers
 * that call the broker (test/support/harness.ts, test/support/unit-broker.ts,
 * test/support/processes.ts and, for every other fetch to a broker the tests
 * started, test/support/conformance-setup.ts) hand each answer to `check`, so
 * an answer with a status, field, `null` or content type the document lacks
 * fails the test that received it.
 */

/** What a test received, as far as the document speaks about it. */
export interface ReceivedAnswer {
  /** The operation's method and path (`/api/...`, any query ignored)... */
  method?: string;
  path?: string;
  /** ...or its operationId, for callers that invoke a function by name. */
  operationId?: string;
  status: number;
  headers: Headers;
  /** The body as text ('' when there is none). */
  text: string;
}

type Json = Record<string, any>;

const DOCUMENT_ID = 'urn:kv-lease:openapi';
/** The document's `servers[0].url`: the API's paths sit under it. */
const BASE = '/api';
/**
 * Served by the Function App but not part of the API (the operator console's
 * page and files, HTML and scripts): the document rightly leaves them out.
 */
const NOT_API = [/^\/api\/console(\/|$)/i];

export interface Checker {
  document: Json;
  /** What is wrong with an answer: empty when it conforms. */
  problems(answer: ReceivedAnswer): string[];
}

/** JSON pointer segment escaping (RFC 6901). */
const pointer = (segments: string[]) =>
  segments.map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

export function createChecker(document: Json = openApiDocument(routes)): Checker {
  // OpenAPI 3.1 schemas are JSON Schema 2020-12. The document's own members
  // are declared as keywords without meaning, so the whole document is one
  // schema whose `#/components/schemas/...` references resolve in place.
  const ajv = new Ajv2020({ allErrors: true, allowUnionTypes: true, validateFormats: false });
  ajv.addVocabulary(['openapi', 'info', 'servers', 'security', 'paths', 'components', 'tags']);
  ajv.addSchema({ ...document, $id: DOCUMENT_ID });
  const validators = new Map<string, ValidateFunction>();
  const validatorAt = (segments: string[]): ValidateFunction => {
    const ref = `${DOCUMENT_ID}#/${pointer(segments)}`;
    let validate = validators.get(ref);
    if (!validate) {
      validate = ajv.compile({ $ref: ref });
      validators.set(ref, validate);
    }
    return validate;
  };

  const templates = Object.keys(document.paths as Json).map((template) => ({
    template,
    pattern: new RegExp(
      `^${template
        .split(/\{\w+\}/)
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]+')}/?$`,
      'i',
    ),
  }));
  const operations = new Map<string, { method: string; template: string }>();
  for (const [template, item] of Object.entries(document.paths as Json)) {
    for (const [method, operation] of Object.entries(item as Json)) {
      if (typeof (operation as Json).operationId === 'string') {
        operations.set((operation as Json).operationId as string, { method, template });
      }
    }
  }

  const problems = (answer: ReceivedAnswer): string[] => {
    let method: string;
    let template: string | undefined;
    let where: string;
    if (answer.operationId !== undefined) {
      const known = operations.get(answer.operationId);
      if (!known) return [`no operation ${answer.operationId} in the document`];
      ({ method, template } = known);
      where = `${answer.operationId} (${method.toUpperCase()} ${template})`;
    } else {
      const path = answer.path ?? '';
      method = (answer.method ?? 'GET').toLowerCase();
      where = `${method.toUpperCase()} ${path}`;
      if (NOT_API.some((pattern) => pattern.test(path))) return [];
      if (!path.toLowerCase().startsWith(`${BASE}/`)) return [`${where}: not below ${BASE}`];
      const local = path.slice(BASE.length);
      template = templates.find((entry) => entry.pattern.test(local))?.template;
    }
    const contentType = (answer.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const found: string[] = [];
    const validateBody = (segments: string[], what: string) => {
      let body: unknown;
      try {
        body = JSON.parse(answer.text);
      } catch {
        found.push(`${where} ${answer.status}: ${what} is not JSON`);
        return;
      }
      const validate = validatorAt(segments);
      if (!validate(body)) {
        found.push(
          `${where} ${answer.status}: the body does not match ${what}: ${(validate.errors ?? [])
            .map(
              (e) => `${e.instancePath || '(body)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
            )
            .join('; ')}`,
        );
      }
    };
    const problemAnswer = (expectedStatus: number, expectedType: string) => {
      if (answer.status !== expectedStatus) {
        found.push(`${where}: answered ${answer.status}, expected ${expectedStatus}`);
      }
      if (contentType !== 'application/problem+json') {
        found.push(`${where} ${answer.status}: Content-Type ${contentType || '(none)'}`);
      } else if (method !== 'head') {
        validateBody(['components', 'schemas', 'Problem'], 'Problem');
        if (!answer.text.includes(`"urn:kv-lease:problem:${expectedType}"`)) {
          found.push(`${where} ${answer.status}: problem type is not ${expectedType}`);
        }
      }
    };

    if (template === undefined) {
      // Not a path of the API: the broker's 404, in the API's error shape.
      problemAnswer(404, 'not-found');
      return found;
    }
    const item = (document.paths as Json)[template] as Json;
    const operation = item[method] as Json | undefined;
    if (!operation) {
      // A method the path does not serve: 405 naming the ones it does.
      problemAnswer(405, 'method-not-allowed');
      const allowed = Object.keys(item)
        .filter((key) => typeof (item[key] as Json)?.operationId === 'string')
        .map((key) => key.toUpperCase())
        .sort();
      const allow = (answer.headers.get('allow') ?? '')
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean)
        .sort();
      if (allow.join() !== allowed.join()) {
        found.push(
          `${where} 405: Allow is "${allow.join(', ')}", the path serves ${allowed.join(', ')}`,
        );
      }
      return found;
    }
    const responses = operation.responses as Json;
    const response = responses[String(answer.status)] as Json | undefined;
    if (!response) {
      return [
        `${where}: status ${answer.status} is not declared (declared: ${Object.keys(responses).join(', ')}); body: ${answer.text.slice(0, 300)}`,
      ];
    }
    for (const [name, header] of Object.entries((response.headers ?? {}) as Json)) {
      if ((header as Json).required && answer.headers.get(name) === null) {
        found.push(`${where} ${answer.status}: header ${name} is missing`);
      }
    }
    const content = (response.content ?? {}) as Json;
    if (Object.keys(content).length === 0) {
      if (answer.text !== '')
        found.push(`${where} ${answer.status}: a body where none is declared`);
      return found;
    }
    if (!(contentType in content)) {
      found.push(
        `${where} ${answer.status}: Content-Type ${contentType || '(none)'} is not declared (${Object.keys(content).join(', ')})`,
      );
      return found;
    }
    if (method === 'head') return found;
    if ((content[contentType] as Json).schema === undefined) {
      // Declared as JSON of no modelled shape (the document itself): JSON is all it must be.
      try {
        JSON.parse(answer.text);
      } catch {
        found.push(`${where} ${answer.status}: the body is not JSON`);
      }
      return found;
    }
    validateBody(
      [
        'paths',
        template,
        method,
        'responses',
        String(answer.status),
        'content',
        contentType,
        'schema',
      ],
      `the schema declared for ${answer.status} ${contentType}`,
    );
    return found;
  };
  return { document, problems };
}

let shared: Checker | undefined;
const violations: string[] = [];

/**
 * Checks an answer a test received. A violation is thrown at once and kept,
 * so that even a caller that swallows the error (a client's retry loop)
 * cannot hide it: `takeViolations` (run after each test by
 * conformance-setup.ts) fails the test with it.
 */
export function check(answer: ReceivedAnswer): void {
  shared ??= createChecker();
  const found = shared.problems(answer);
  if (found.length === 0) return;
  violations.push(...found);
  throw new Error(`The answer does not match the OpenAPI document:\n${found.join('\n')}`);
}

export function takeViolations(): string[] {
  return violations.splice(0, violations.length);
}

/** Origins of brokers the tests started: their answers are checked whatever the caller. */
const brokers = new Set<string>();

export function registerBroker(url: string): void {
  brokers.add(new URL(url).origin);
}

export function isBroker(url: URL): boolean {
  return brokers.has(url.origin);
}
