import { EOL } from 'node:os';

/**
 * The GitHub runner's file commands (GITHUB_OUTPUT, GITHUB_STATE, GITHUB_ENV):
 * `name=value` lines, or heredocs `name<<DELIMITER` ... `DELIMITER` for
 * values with line breaks, as @actions/core writes them (with os.EOL, so CRLF
 * on Windows). Parsed the way the runner parses them: either line ending.
 */
export function parseFileCommands(text: string): Record<string, string> {
  const lines = text.split(/\r?\n/);
  const values: Record<string, string> = {};
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index] ?? '';
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name = '', delimiter = ''] = heredoc;
      const body: string[] = [];
      index += 1;
      while (index < lines.length && lines[index] !== delimiter) body.push(lines[index++] ?? '');
      if (index >= lines.length) throw new Error(`${name}: no closing delimiter ${delimiter}`);
      values[name] = body.join('\n');
      continue;
    }
    const equals = line.indexOf('=');
    if (equals <= 0) throw new Error(`not a file command: ${line}`);
    values[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return values;
}

/** What @actions/core writes for one value (for tests of the parser). */
export function formatFileCommand(
  name: string,
  value: string,
  delimiter: string,
  eol = EOL,
): string {
  return `${name}<<${delimiter}${eol}${value.split('\n').join(eol)}${eol}${delimiter}${eol}`;
}

/**
 * Agent logging commands (`##vso[area.action key=value;...]message`), which
 * azure-pipelines-task-lib prints on stdout, with its escapes undone.
 */
export interface LoggingCommand {
  command: string;
  properties: Record<string, string>;
  message: string;
}

function unescapeProperty(value: string): string {
  return value
    .replace(/%0D/g, '\r')
    .replace(/%0A/g, '\n')
    .replace(/%3B/g, ';')
    .replace(/%5D/g, ']')
    .replace(/%AZP25/g, '%');
}

function unescapeMessage(value: string): string {
  return value
    .replace(/%0D/g, '\r')
    .replace(/%0A/g, '\n')
    .replace(/%AZP25/g, '%');
}

export function parseLoggingCommands(stdout: string): LoggingCommand[] {
  const commands: LoggingCommand[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const match = /##vso\[([\w.]+)(?: ([^\]]*))?\](.*)$/.exec(line);
    if (!match) continue;
    const [, command = '', props = '', message = ''] = match;
    const properties: Record<string, string> = {};
    for (const pair of props.split(';')) {
      const equals = pair.indexOf('=');
      if (equals > 0)
        properties[pair.slice(0, equals).trim()] = unescapeProperty(pair.slice(equals + 1));
    }
    commands.push({ command, properties, message: unescapeMessage(message) });
  }
  return commands;
}
