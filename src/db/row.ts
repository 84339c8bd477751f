/** Mapping helpers from what either dialect returns to domain values. */

export function toDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

export function toOptionalDate(value: Date | string | null): Date | null {
  return value === null ? null : toDate(value);
}

export function toBool(value: boolean | number): boolean {
  return value === true || value === 1;
}

export function fromJson(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value;
}
