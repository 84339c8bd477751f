import { readFileSync } from 'node:fs';
import { isCollection, isScalar, Lexer, LineCounter, parse as parseYaml, parseDocument, YAMLError } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

/** A configuration that cannot be used; the message names the offending key(s). */
export class ConfigError extends Error {
  readonly issues: readonly string[];
  constructor(issues: readonly string[], source: string) {
    super(`invalid configuration (${source}): ${issues.join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export interface ConfigSource {
  /** Path of the YAML file, if any. */
  file?: string;
  env: Record<string, string | undefined>;
}

/** Environment overrides: SCHEDULER__HTTP__PORT=8080 sets http.port (segments in SNAKE_CASE → camelCase). */
const ENV_PREFIX = 'SCHEDULER__';

export function configFileFrom(cliPath: string | undefined, env: Record<string, string | undefined>): string | undefined {
  return cliPath ?? (env.SCHEDULER_CONFIG || undefined);
}

/** Reads the file (if any), applies environment overrides and validates. Throws ConfigError. */
export function loadConfig(source: ConfigSource): Config {
  const raw = readRaw(source);
  return parseConfig(raw, source.file ?? 'defaults and environment');
}

export function parseConfig(raw: unknown, label: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error), label);
  return deepFreeze(result.data);
}

export function readRaw(source: ConfigSource): Record<string, unknown> {
  let fromFile: unknown = {};
  if (source.file) {
    let text: string;
    try {
      text = readFileSync(source.file, 'utf8');
    } catch (error) {
      throw new ConfigError([`cannot read ${source.file}: ${(error as Error).message}`], source.file);
    }
    const lines = new LineCounter();
    try {
      // No pretty errors: their code frame quotes the offending line, which may hold a password.
      fromFile = parseYaml(text, { prettyErrors: false, lineCounter: lines }) ?? {};
    } catch (error) {
      throw new ConfigError([`YAML syntax error: ${yamlProblem(error, lines)}`], source.file);
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) {
      throw new ConfigError(['the file must hold a mapping of keys at the top level'], source.file);
    }
  }
  const merged = structuredClone(fromFile as Record<string, unknown>);
  for (const [name, value] of Object.entries(source.env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = name
      .slice(ENV_PREFIX.length)
      .split('__')
      .map((segment) => segment.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()));
    setPath(merged, path, parseEnvValue(value, takesCollection(path)), name);
  }
  return merged;
}

/** The reason and where (line, column), never the source text around it. */
function yamlProblem(error: unknown, lines: LineCounter): string {
  if (!(error instanceof YAMLError)) return (error as Error).message;
  const offset = error.pos[0];
  if (offset < 0) return error.message;
  const { line, col } = lines.linePos(offset);
  return `${error.message} at line ${line}, column ${col}`;
}

/** Whether the schema at `path` holds a list or mapping (through defaults, nullables and transforms). */
function takesCollection(path: readonly string[]): boolean {
  let node: z.ZodType | undefined = configSchema;
  for (const key of path) {
    node = node && bare(node);
    if (node instanceof z.ZodObject) node = (node.shape as Record<string, z.ZodType | undefined>)[key];
    else if (node instanceof z.ZodRecord) node = node.valueType as z.ZodType;
    else return false;
  }
  node = node && bare(node);
  return node instanceof z.ZodArray || node instanceof z.ZodObject || node instanceof z.ZodRecord || node instanceof z.ZodTuple;
}

/** The schema inside a default, prefault, nullable, optional or pipe (a transform's input). */
function bare(node: z.ZodType): z.ZodType {
  for (;;) {
    if (node instanceof z.ZodDefault || node instanceof z.ZodPrefault || node instanceof z.ZodNullable || node instanceof z.ZodOptional) node = node.unwrap() as z.ZodType;
    else if (node instanceof z.ZodPipe) node = node.in as z.ZodType;
    else return node;
  }
}

/**
 * An env value is taken as YAML only where that is unambiguous: a number, boolean or null, a whole
 * quoted string (the text inside: the way to pass `"8080"` or `"true"` as text), or a flow
 * sequence/mapping that parses cleanly, for a key that takes a list or mapping (`[MP4, M4A]`).
 * Anything else is the text as written, so a ` #` (a YAML comment) in a message template is kept.
 */
function parseEnvValue(value: string, collection: boolean): unknown {
  // Comment tokens only: a `#` inside a quoted scalar is part of that token, not a comment.
  for (const token of new Lexer().lex(value)) if (token.startsWith('#')) return value;
  const doc = parseDocument(value);
  if (doc.errors.length || doc.warnings.length) return value;
  const node = doc.contents;
  if (node === null || isScalar(node)) {
    const parsed: unknown = node === null ? null : node.value;
    if (node !== null && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE')) return parsed;
    return parsed === null || typeof parsed === 'number' || typeof parsed === 'boolean' ? parsed : value;
  }
  // Only where the key takes a list or mapping: a template `{url}` or a text `[Notice]` stays text.
  return collection && isCollection(node) && node.flow ? (doc.toJS() as unknown) : value;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown, envName: string): void {
  let node = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (next === undefined) {
      const created: Record<string, unknown> = {};
      node[key] = created;
      node = created;
    } else if (typeof next === 'object' && next !== null && !Array.isArray(next)) {
      node = next as Record<string, unknown>;
    } else {
      throw new ConfigError([`${envName} sets a key inside ${path.slice(0, i + 1).join('.')}, which is not a section`], 'environment');
    }
  }
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const key = issue.path.map(String).join('.') || '(top level)';
    if (issue.code === 'unrecognized_keys') {
      const where = issue.path.length ? `${key}.` : '';
      return `unknown key ${issue.keys.map((k) => `"${where}${k}"`).join(', ')}`;
    }
    return `${key}: ${issue.message}`;
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
