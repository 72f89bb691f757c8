import { afterAll, afterEach } from 'vitest';

import { check, isBroker, takeViolations } from './conformance';

/**
 * Loaded before every test file (vitest.config.mts `setupFiles`): each fetch
 * a test makes to a broker it started (test/support/processes.ts registers
 * them) is checked against the OpenAPI document — the client library's, the
 * console test's and a test's own fetch alike. A fake broker (a test's own
 * server) is not registered and not checked.
 */

const original = globalThis.fetch;

globalThis.fetch = async function checkedFetch(input, init) {
  const response = await original(input, init);
  const request = input instanceof Request ? input : undefined;
  const url = new URL(
    request ? request.url : input instanceof URL ? input.href : (input),
  );
  if (isBroker(url)) {
    const method = init?.method ?? request?.method ?? 'GET';
    const text = method.toUpperCase() === 'HEAD' ? '' : await response.clone().text();
    try {
      check({
        method,
        path: url.pathname,
        status: response.status,
        headers: response.headers,
        text,
      });
    } catch {
      // Kept by check(): the test fails after it, whatever the caller does with an error here.
    }
  }
  return response;
};

const fail = () => {
  const found = takeViolations();
  if (found.length > 0) {
    throw new Error(`Answers that do not match the OpenAPI document:\n${found.join('\n')}`);
  }
};

afterEach(fail);
afterAll(fail);
