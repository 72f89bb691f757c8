import { RestError } from '@azure/data-tables';

/** The table is gone (a restarted emulator, a recreated account): create it again. */
export function isTableNotFound(error: unknown): boolean {
  return (
    error instanceof RestError &&
    error.statusCode === 404 &&
    /TableNotFound/.test(`${error.code ?? ''} ${error.message}`)
  );
}
