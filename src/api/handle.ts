import type {
  HttpHandler,
  HttpMethod,
  HttpRequest,
  HttpResponseInit,
  InvocationContext,
} from '@azure/functions';
import type { z } from 'zod';

import { type ErrorCode, isDomainError } from '../domain/errors';
import type { Attempt } from '../domain/events';
import { perform, type UseCase } from '../domain/use-case';
import { errorFields } from '../observability/error-fields';
import { runInInvocation } from '../observability/invocation';
import { redact } from '../observability/redact';
import { problemResponse } from './problem';
import { refuseOversizedBody } from './request';
import type { Services } from './services';

/** One answer an operation gives on success, as the OpenAPI document publishes it. */
export interface Answer {
  description: string;
  /** The JSON body: a schema of src/contract. Absent: JSON the contract does not model. */
  schema?: z.ZodType;
  /** Headers the answer always carries: name -> what it holds. */
  headers?: Record<string, string>;
}

/**
 * What an endpoint publishes in the OpenAPI document (src/api/openapi.ts):
 * its inputs, the answers it gives on success, and the errors of its own.
 * The errors every endpoint of its kind can answer (auth, validation, body
 * size, store, bug) are derived there, so they cannot be forgotten.
 */
export interface RouteDoc {
  name: string;
  methods: HttpMethod[];
  /** Route below the `api` prefix of host.json. */
  route: string;
  summary: string;
  /** Schemas of the route's `{name}` segments (every segment needs one). */
  params?: Record<string, z.ZodType>;
  /** Query parameters the endpoint takes (a use case without them refuses any: 400). */
  query?: z.ZodObject;
  /** Request headers the endpoint reads. */
  headers?: Record<string, z.ZodType>;
  /** The JSON body the endpoint reads: it may then answer 415 as well. */
  body?: { schema: z.ZodType; required: boolean };
  /** Success answers by status. */
  answers: Record<number, Answer>;
  /** Domain errors the endpoint raises beyond those of every endpoint of its kind. */
  errors?: ErrorCode[];
}

/**
 * One HTTP endpoint in the route table: where it lives, the use case it runs
 * (whose declaration says which roles may call it), how the request becomes
 * the use case's input (zod schemas), and how the result becomes the answer.
 */
export interface UseCaseRoute<Input, Output> extends RouteDoc {
  useCase: (services: Services) => UseCase<Input, Output>;
  /** Validates the request; notes validated values (vault, ip, lease id) on `attempt`. */
  input: (request: HttpRequest, attempt: Attempt) => Promise<Input> | Input;
  respond: (output: Output, request: HttpRequest) => HttpResponseInit;
}

/**
 * An endpoint that is not a use case and is never audited: health and the
 * OpenAPI document (no caller), whoami (which authenticates the caller itself).
 */
export interface PlainRoute extends RouteDoc {
  answer: (services: Services, request: HttpRequest) => Promise<HttpResponseInit>;
}

// The table holds routes of many input and output types.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Route = UseCaseRoute<any, any> | PlainRoute;

/** Keeps a route's input and output types checked against each other in the table. */
export function useCaseRoute<Input, Output>(
  route: UseCaseRoute<Input, Output>,
): UseCaseRoute<Input, Output> {
  return route;
}

/**
 * The one error and log policy of the API. A domain error is the problem
 * type of its code; anything else is a bug: a bare 500 that carries nothing
 * of the error, logged with its cause and the invocation id (text through
 * `redact`, so no token reaches a log).
 */
function failure(
  error: unknown,
  context: InvocationContext,
  services: (() => Services) | undefined,
): HttpResponseInit {
  const response = problemResponse(error);
  if (!isDomainError(error)) {
    const fields = errorFields(error);
    context.error(`Unhandled error in ${context.functionName}: ${fields.error}`);
    let logger;
    try {
      logger = services?.().logger;
    } catch {
      logger = undefined; // the services could not be built: the context log has it
    }
    logger?.error('Unhandled error', {
      invocationId: context.invocationId,
      function: context.functionName,
      ...fields,
      ...(error instanceof Error && error.stack ? { stack: redact(error.stack) } : {}),
    });
  } else if (response.status !== undefined && response.status >= 500) {
    // A fault of the broker's own (store, vault, key set): logged with its cause.
    services?.().logger.warn('Request failed', {
      invocationId: context.invocationId,
      function: context.functionName,
      code: error.code,
      ...errorFields(error),
    });
  }
  return response;
}

/** The Functions handler of a route, run in its invocation's scope. */
export function httpHandler(route: Route, services: () => Services): HttpHandler {
  return (request, context) =>
    runInInvocation(context.invocationId, async () => {
      try {
        if ('answer' in route) {
          await refuseOversizedBody(request);
          return await route.answer(services(), request);
        }
        const built = services();
        const useCase: UseCase<unknown, unknown> = route.useCase(built);
        const output = await perform(
          useCase,
          {
            // NOTE: before authentication: a stranger's megabytes cost no token validation.
            admit: () => refuseOversizedBody(request),
            authenticate: () => built.auth.authenticate(request.headers),
            input: (attempt): unknown => route.input(request, attempt),
          },
          built.events,
        );
        return route.respond(output, request);
      } catch (error) {
        return failure(error, context, services);
      }
    });
}
