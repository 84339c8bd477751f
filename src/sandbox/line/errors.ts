/**
 * LINE's error bodies: `{message, details?: [{message, property}]}`; `details` is omitted when empty.
 * Strings quoted in docs/line-api.md are used verbatim; the others are marked as our best guess.
 */

export interface LineErrorDetail {
  message: string;
  property: string;
}

export interface LineErrorBody {
  message: string;
  details?: LineErrorDetail[];
  sentMessages?: { id: string; quoteToken?: string }[];
}

export const MESSAGES = {
  rateLimited: 'The API rate limit has been exceeded. Try again later.',
  monthlyLimit: 'You have reached your monthly limit.',
  retryKeyAccepted: 'The retry key is already accepted',
  failedToSend: 'Failed to send messages',
  invalidReplyToken: 'Invalid reply token',
  // Seen in live LINE responses (quoted by third parties); the doc gives the "due to the following reason" form.
  missingAuth: "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'",
  invalidToken:
    'Authentication failed due to the following reason: invalid token. Confirm that the access token in the authorization header is valid.',
  // Guesses: LINE's wording for these is not documented.
  invalidRetryKey: "The value for the 'X-Line-Retry-Key' header is invalid",
  retryKeyNotSupported: "The 'X-Line-Retry-Key' header is not supported by this endpoint",
  notFound: 'Not found',
  internal: 'Internal server error',
  tooLarge: 'Request entity too large',
  unsupportedMediaType: 'Unsupported media type',
} as const;

export function errorBody(message: string, details: LineErrorDetail[] = []): LineErrorBody {
  return details.length > 0 ? { message, details } : { message };
}

export function invalidPropertyBody(property: string): LineErrorBody {
  return { message: `The property, '${property}', in the request body is invalid (line: -, column: -)` };
}

export function unparsableJsonBody(reason: string): LineErrorBody {
  return { message: `The request body could not be parsed as JSON (${reason})` };
}

export function validationBody(details: LineErrorDetail[]): LineErrorBody {
  return { message: `The request body has ${details.length} error(s)`, details };
}
