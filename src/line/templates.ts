/**
 * Message templates: text with `{placeholder}`s (`{{` and `}}` for literal braces). They are checked
 * when the configuration is loaded or reloaded: unknown placeholders, and whether the longest
 * possible rendering still fits LINE's limit, so a bad template fails the reload, not the send.
 */

export const PLACEHOLDERS = ['title', 'date', 'start', 'end', 'url'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type TemplateValues = Record<Placeholder, string>;

/**
 * The longest value each placeholder can take, in UTF-16 units: a title is at most 200 characters
 * (400 units if every one is outside the BMP), a link at most 1,000 (LINE's link limit), and the
 * local times as `localTimes` formats them.
 */
export const MAX_VALUE_LENGTH: Readonly<Record<Placeholder, number>> = { title: 400, date: 10, start: 5, end: 5, url: 1000 };

type Part = { literal: string } | { placeholder: Placeholder };

export type ParsedTemplate = { ok: true; parts: Part[] } | { ok: false; problem: string };

const isPlaceholder = (name: string): name is Placeholder => (PLACEHOLDERS as readonly string[]).includes(name);

export function parseTemplate(template: string): ParsedTemplate {
  const parts: Part[] = [];
  let literal = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    const next = template[i + 1];
    if ((c === '{' && next === '{') || (c === '}' && next === '}')) {
      literal += c;
      i++;
      continue;
    }
    if (c === '}') return { ok: false, problem: `unmatched "}" at position ${i} (write "}}" for a literal brace)` };
    if (c !== '{') {
      literal += c;
      continue;
    }
    const close = template.indexOf('}', i);
    if (close < 0) return { ok: false, problem: `unclosed "{" at position ${i} (write "{{" for a literal brace)` };
    const name = template.slice(i + 1, close).trim();
    if (!isPlaceholder(name)) return { ok: false, problem: `unknown placeholder {${name}} (use ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})` };
    if (literal) parts.push({ literal });
    literal = '';
    parts.push({ placeholder: name });
    i = close;
  }
  if (literal) parts.push({ literal });
  return { ok: true, parts };
}

export function renderParts(parts: readonly Part[], values: TemplateValues): string {
  return parts.map((p) => ('literal' in p ? p.literal : values[p.placeholder])).join('');
}

/** A configuration has a handful of templates, each rendered once per class at the peak: parse each once. */
const parsedTemplates = new Map<string, ParsedTemplate>();

/** Renders a template; throws on a template that does not parse (config validation rules that out). */
export function renderTemplate(template: string, values: TemplateValues): string {
  let parsed = parsedTemplates.get(template);
  if (!parsed) {
    parsed = parseTemplate(template);
    if (parsedTemplates.size >= 100) parsedTemplates.clear();
    parsedTemplates.set(template, parsed);
  }
  if (!parsed.ok) throw new Error(`template: ${parsed.problem}`);
  return renderParts(parsed.parts, values);
}

/** The longest rendering, in UTF-16 units, whatever the values. */
export function worstCaseLength(parts: readonly Part[]): number {
  return parts.reduce((n, p) => n + ('literal' in p ? p.literal.length : MAX_VALUE_LENGTH[p.placeholder]), 0);
}

export interface TemplateRule {
  /** LINE's limit for the field the template fills. */
  maxLength: number;
  /** Placeholders that must appear (a text message without the link is useless). */
  required?: readonly Placeholder[];
}

/** Problems with one template; empty when it is fine. */
export function templateProblems(template: string, rule: TemplateRule): string[] {
  const parsed = parseTemplate(template);
  if (!parsed.ok) return [parsed.problem];
  const problems: string[] = [];
  const used = new Set(parsed.parts.flatMap((p) => ('placeholder' in p ? [p.placeholder] : [])));
  for (const name of rule.required ?? []) if (!used.has(name)) problems.push(`must contain {${name}}`);
  if (used.size === 0 && template.trim() === '') problems.push('must not be empty');
  const worst = worstCaseLength(parsed.parts);
  if (worst > rule.maxLength) {
    problems.push(`can render to ${worst} characters with the longest title and link, over LINE's limit of ${rule.maxLength}`);
  }
  return problems;
}

const WEEKDAYS = ['日', '一', '二', '三', '四', '五', '六'];

/** Building an Intl formatter costs far more than using one: keep one per time zone. */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, format);
  }
  return format;
}

type LocalTimes = Readonly<Pick<TemplateValues, 'date' | 'start' | 'end'>>;

/** Classes of a peak share their times (20,000 start at 20:00): each (zone, start, end) is formatted once. */
const formattedTimes = new Map<string, LocalTimes>();

/**
 * Local date and times in the business time zone, in the compact form Taiwanese schools use:
 * `12/1（二）`, `19:00`, `20:30`. Built from parts, so the output does not depend on ICU's locale data.
 */
export function localTimes(startsAt: Date, endsAt: Date, timeZone: string): LocalTimes {
  const key = `${timeZone} ${startsAt.getTime()} ${endsAt.getTime()}`;
  let times = formattedTimes.get(key);
  if (!times) {
    times = formatTimes(startsAt, endsAt, timeZone);
    if (formattedTimes.size >= 1000) formattedTimes.clear();
    formattedTimes.set(key, times);
  }
  return times;
}

function formatTimes(startsAt: Date, endsAt: Date, timeZone: string): LocalTimes {
  const parts = (date: Date) => {
    const format = formatterFor(timeZone);
    const map = Object.fromEntries(format.formatToParts(date).map((p) => [p.type, p.value]));
    const year = Number(map.year);
    const month = Number(map.month);
    const day = Number(map.day);
    const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
    return { month, day, weekday, time: `${map.hour}:${map.minute}` };
  };
  const start = parts(startsAt);
  const end = parts(endsAt);
  return { date: `${start.month}/${start.day}（${WEEKDAYS[start.weekday] ?? ''}）`, start: start.time, end: end.time };
}
