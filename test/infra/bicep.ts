/**
 * Just enough Bicep reading for the infra tests: no Bicep CLI runs on these
 * machines, so the templates are checked as text, with a scanner that knows
 * comments, strings and string interpolation.
 */

/** Where the delimiters of a Bicep file do not pair up, or undefined when they do. */
export function unbalancedDelimiter(source: string): string | undefined {
  const stack: string[] = [];
  const closing: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let line = 1;
  let inString = false;
  let i = 0;
  while (i < source.length) {
    const char = source.charAt(i);
    const next = source.charAt(i + 1);
    if (char === '\n') line += 1;
    if (inString) {
      if (char === '\\') {
        i += 2;
        continue;
      }
      if (char === "'") {
        inString = false;
      } else if (char === '$' && next === '{') {
        stack.push('${');
        inString = false;
        i += 2;
        continue;
      }
      i += 1;
      continue;
    }
    if (char === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      i = end === -1 ? source.length : end;
      continue;
    }
    if (char === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end === -1) return `unterminated comment at line ${line}`;
      line += source.slice(i, end).split('\n').length - 1;
      i = end + 2;
      continue;
    }
    if (source.startsWith("'''", i)) {
      const end = source.indexOf("'''", i + 3);
      if (end === -1) return `unterminated multi-line string at line ${line}`;
      line += source.slice(i, end).split('\n').length - 1;
      i = end + 3;
      continue;
    }
    if (char === "'") {
      inString = true;
    } else if (char === '(' || char === '[' || char === '{') {
      stack.push(char);
    } else if (char === ')' || char === ']' || char === '}') {
      const open = stack.pop();
      if (char === '}' && open === '${') {
        inString = true;
      } else if (open !== closing[char]) {
        return `'${char}' at line ${line} closes '${open ?? 'nothing'}'`;
      }
    }
    i += 1;
  }
  if (inString) return 'unterminated string at the end of the file';
  if (stack.length > 0) return `unclosed '${stack.join(' ')}' at the end of the file`;
  return undefined;
}

/** Source without comments (strings kept), for regex checks that must not match prose. */
export function withoutComments(source: string): string {
  let out = '';
  let inString = false;
  let i = 0;
  while (i < source.length) {
    const char = source.charAt(i);
    const next = source.charAt(i + 1);
    if (inString) {
      out += char;
      if (char === '\\') {
        out += next;
        i += 2;
        continue;
      }
      if (char === "'") inString = false;
      i += 1;
      continue;
    }
    if (char === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      i = end === -1 ? source.length : end;
      continue;
    }
    if (char === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      i = end === -1 ? source.length : end + 2;
      continue;
    }
    if (char === "'") inString = true;
    out += char;
    i += 1;
  }
  return out;
}

export interface BicepParam {
  name: string;
  type: string;
  /** The default expression as written, or undefined for a required parameter. */
  defaultValue?: string;
}

export function params(source: string): BicepParam[] {
  const found: BicepParam[] = [];
  for (const match of withoutComments(source).matchAll(
    /^param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+))?$/gm,
  )) {
    const [, name, type, defaultValue] = match;
    if (name === undefined || type === undefined) continue;
    found.push({ name, type, defaultValue: defaultValue?.trim() });
  }
  return found;
}

/**
 * The properties of a top-level `var <name> = { ... }` object: name to the
 * expression as written (one line each).
 */
export function objectVar(source: string, name: string): Map<string, string> {
  const lines = withoutComments(source).split('\n');
  const start = lines.findIndex((line) =>
    new RegExp(`^var\\s+${name}\\s*=\\s*\\{\\s*$`).test(line),
  );
  if (start === -1) throw new Error(`var ${name} = { ... } not found`);
  const properties = new Map<string, string>();
  for (const line of lines.slice(start + 1)) {
    if (/^\}/.test(line)) return properties;
    const match = /^ {2}([A-Za-z_][\w]*|'[^']+')\s*:\s*(.+?)\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) {
      properties.set(match[1].replace(/'/g, ''), match[2]);
    }
  }
  throw new Error(`var ${name} is not closed`);
}

/** `module <symbol> '<path>'` references. */
export function moduleReferences(source: string): { symbol: string; path: string }[] {
  return [...withoutComments(source).matchAll(/^module\s+(\w+)\s+'([^']+)'/gm)].map((match) => ({
    symbol: match[1] ?? '',
    path: match[2] ?? '',
  }));
}

/** `resource <symbol> '<type>@<api-version>'` declarations. */
export function resourceTypes(
  source: string,
): { symbol: string; type: string; apiVersion: string }[] {
  return [
    ...withoutComments(source).matchAll(/^\s*resource\s+(\w+)\s+'([^'@]+)(?:@([^']+))?'/gm),
  ].map((match) => ({ symbol: match[1] ?? '', type: match[2] ?? '', apiVersion: match[3] ?? '' }));
}

export function targetScope(source: string): string {
  return /^targetScope\s*=\s*'(\w+)'/m.exec(withoutComments(source))?.[1] ?? 'resourceGroup';
}

/** Top-level `var <name> = '<guid>'` constants. */
export function guidConstants(source: string): Map<string, string> {
  const constants = new Map<string, string>();
  for (const match of withoutComments(source).matchAll(
    /^var\s+(\w+)\s*=\s*'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'\s*$/gm,
  )) {
    if (match[1] !== undefined && match[2] !== undefined) constants.set(match[1], match[2]);
  }
  return constants;
}

/** An object literal of a Bicep file: each property with the object literals inside its value. */
export interface BicepObject {
  properties: Map<string, { text: string; objects: BicepObject[] }>;
}

/**
 * Parses the object literal whose `{` is at `start` (comments removed
 * first). Values are kept as text; object literals inside a value (directly,
 * in arrays, `for` bodies or ternaries, not inside function calls) are parsed
 * too, so property names can be checked against a resource type.
 */
export function parseObjectAt(source: string, start: number): { object: BicepObject; end: number } {
  let i = start;
  const peek = () => source.charAt(i);
  const skipSpace = (newlines: boolean) => {
    while (i < source.length && (newlines ? /[\s,]/ : /[ \t]/).test(peek())) i += 1;
  };
  const skipString = () => {
    if (source.startsWith("'''", i)) {
      const end = source.indexOf("'''", i + 3);
      i = end === -1 ? source.length : end + 3;
      return;
    }
    i += 1; // opening quote
    let depth = 0;
    while (i < source.length) {
      const char = peek();
      if (char === '\\') i += 2;
      else if (depth === 0 && char === "'") {
        i += 1;
        return;
      } else if (char === '$' && source.charAt(i + 1) === '{') {
        depth += 1;
        i += 2;
      } else if (depth > 0 && char === '}') {
        depth -= 1;
        i += 1;
      } else i += 1;
    }
  };
  /** Skips a parenthesised group, strings included. */
  const skipParens = () => {
    let depth = 0;
    while (i < source.length) {
      const char = peek();
      if (char === "'") {
        skipString();
        continue;
      }
      if (char === '(') depth += 1;
      if (char === ')') depth -= 1;
      i += 1;
      if (depth === 0) return;
    }
  };
  /** Reads a value up to the end of its line (or the closing bracket), collecting object literals. */
  const readValue = (closer: string): BicepObject[] => {
    const objects: BicepObject[] = [];
    while (i < source.length) {
      const char = peek();
      if (char === '\n' || char === closer) return objects;
      if (char === "'") skipString();
      else if (char === '(') skipParens();
      else if (char === '{') objects.push(parseObject());
      else if (char === '[') {
        i += 1;
        for (;;) {
          skipSpace(true);
          if (peek() === ']' || i >= source.length) break;
          objects.push(...readValue(']'));
        }
        i += 1;
      } else i += 1;
    }
    return objects;
  };
  const parseObject = (): BicepObject => {
    const properties: BicepObject['properties'] = new Map();
    i += 1; // '{'
    for (;;) {
      skipSpace(true);
      if (peek() === '}' || i >= source.length) break;
      const key = /^(?:'([^']*)'|([A-Za-z_]\w*))\s*:/.exec(source.slice(i));
      if (!key) throw new Error(`expected a property at: ${source.slice(i, i + 40)}`);
      i += key[0].length;
      skipSpace(false);
      const valueStart = i;
      const objects = readValue('}');
      properties.set(key[1] ?? key[2] ?? '', {
        text: source.slice(valueStart, i).trim(),
        objects,
      });
    }
    i += 1; // '}'
    return { properties };
  };
  return { object: parseObject(), end: i };
}

/** The body of each `resource` declaration of a type (the `{` after `=`, `if (...)` or `[for ...:`). */
export function resourceBodies(
  source: string,
  typePrefix: string,
): { symbol: string; type: string; existing: boolean; body: BicepObject }[] {
  const text = withoutComments(source);
  const found: { symbol: string; type: string; existing: boolean; body: BicepObject }[] = [];
  for (const match of text.matchAll(/^\s*resource\s+(\w+)\s+'([^']+)'(\s+existing)?\s*=/gm)) {
    const [, symbol = '', type = ''] = match;
    if (!type.startsWith(typePrefix)) continue;
    const open = text.indexOf('{', (match.index ?? 0) + match[0].length);
    found.push({
      symbol,
      type,
      existing: match[3] !== undefined,
      body: parseObjectAt(text, open).object,
    });
  }
  return found;
}
