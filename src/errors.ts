/**
 * The errors domain code throws on purpose. The HTTP layer maps `kind` to a status; the CLI to an
 * exit code. `field` names the input that is wrong, so the caller can fix it.
 */
export type DomainErrorKind = 'invalid' | 'not_found' | 'conflict';

export class DomainError extends Error {
  readonly kind: DomainErrorKind;
  readonly field: string | undefined;
  constructor(kind: DomainErrorKind, message: string, field?: string) {
    super(message);
    this.name = 'DomainError';
    this.kind = kind;
    this.field = field;
  }
}

export const invalid = (field: string, message: string): DomainError => new DomainError('invalid', `${field}: ${message}`, field);
export const notFound = (message: string, field?: string): DomainError => new DomainError('not_found', message, field);
export const conflict = (message: string, field?: string): DomainError => new DomainError('conflict', message, field);

/** Any thrown value as an Error, keeping the original as `cause`. */
export function coerceError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error), { cause: error });
}
