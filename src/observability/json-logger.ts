import type { Logger } from '../domain/logger';

/** One JSON object per line on stderr, the shape log collectors expect. */
export const jsonLogger: Logger = {
  info: (message, properties) => write('info', message, properties),
  warn: (message, properties) => write('warn', message, properties),
  error: (message, properties) => write('error', message, properties),
};

function write(level: string, message: string, properties?: Record<string, unknown>): void {
  process.stderr.write(
    `${JSON.stringify({ at: new Date().toISOString(), level, message, ...properties })}\n`,
  );
}
