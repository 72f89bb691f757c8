/**
 * The name of a route's 405 function (see definitions.ts). The local runner
 * reads the registrations the app makes, as the host does, and sends a method
 * no function of a path names (TRACE, say) to this one, so it knows it by name.
 */
export const METHOD_NOT_ALLOWED_PREFIX = 'methodNotAllowed-';

export function methodNotAllowedName(route: string): string {
  return `${METHOD_NOT_ALLOWED_PREFIX}${route.replace(/[^A-Za-z0-9]+/g, '-').replace(/-$/, '')}`;
}
