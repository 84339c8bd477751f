import { z } from 'zod';

/**
 * The LINE message objects we send (text and imagemap), their builders, and a check against
 * LINE's limits (docs: line-api.md §6–7) run before anything is sent. Lengths are UTF-16 code
 * units (`String#length`), as LINE counts them; zod's string max() counts code points, so it is
 * not used for limits here.
 */

export const LIMITS = {
  messagesPerRequest: 5,
  textLength: 5000,
  altTextLength: 1500,
  baseUrlLength: 2000,
  linkUriLength: 1000,
  imagemapActions: 50,
  imagemapWidth: 1040,
  multicastRecipients: 500,
} as const;

/** The widths LINE clients request as `{baseUrl}/{width}`. */
export const IMAGEMAP_WIDTHS = [240, 300, 460, 700, 1040] as const;
export type ImagemapWidth = (typeof IMAGEMAP_WIDTHS)[number];

export interface TextMessage {
  type: 'text';
  text: string;
}

export interface ImagemapArea {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface ImagemapUriAction {
  type: 'uri';
  linkUri: string;
  area: ImagemapArea;
}

export interface ImagemapMessage {
  type: 'imagemap';
  baseUrl: string;
  altText: string;
  baseSize: { width: number; height: number };
  actions: ImagemapUriAction[];
}

export type OutMessage = TextMessage | ImagemapMessage;

export function textMessage(text: string): TextMessage {
  return { type: 'text', text };
}

/** One image, one tap target: the whole image links to `linkUri`. `height` is at width 1040. */
export function imagemapMessage(input: { baseUrl: string; altText: string; linkUri: string; height: number }): ImagemapMessage {
  const width = LIMITS.imagemapWidth;
  return {
    type: 'imagemap',
    baseUrl: input.baseUrl,
    altText: input.altText,
    baseSize: { width, height: input.height },
    actions: [{ type: 'uri', linkUri: input.linkUri, area: { x: 0, y: 0, width, height: input.height } }],
  };
}

/** `{publicBaseUrl}/imagemap/{hash}`, keeping any path prefix of the public base URL. */
export function imagemapBaseUrl(publicBaseUrl: string, hash: string): string {
  return `${publicBaseUrl.replace(/\/+$/, '')}/imagemap/${hash}`;
}

export interface MessageProblem {
  /** Where, in LINE's property notation: `messages[0].altText`. */
  property: string;
  message: string;
}

const httpsProblem = (value: string, max: number): string | undefined => {
  if (value.length === 0) return 'must not be empty';
  if (value.length > max) return `must be at most ${max} characters (UTF-16 units), got ${value.length}`;
  if (!URL.canParse(value) || new URL(value).protocol !== 'https:') return 'must be an https URL (LINE only opens https links)';
  // LINE wants URLs percent-encoded; a raw space or non-ASCII character is rejected or mangled.
  if (/[^\x21-\x7e]/.test(value)) return 'must be percent-encoded (no spaces or non-ASCII characters)';
  return undefined;
};

const lengthProblem = (value: string, max: number): string | undefined => {
  if (value.length === 0) return 'must not be empty';
  if (value.length > max) return `must be at most ${max} characters (UTF-16 units), got ${value.length}`;
  return undefined;
};

/** Every way `messages` breaks LINE's rules; empty when it can be sent. */
export function messageProblems(messages: readonly OutMessage[]): MessageProblem[] {
  const problems: MessageProblem[] = [];
  const add = (property: string, message: string | undefined): void => {
    if (message !== undefined) problems.push({ property, message });
  };
  if (messages.length === 0) add('messages', 'must hold at least one message');
  if (messages.length > LIMITS.messagesPerRequest) add('messages', `must hold at most ${LIMITS.messagesPerRequest} messages, got ${messages.length}`);
  messages.forEach((message, i) => {
    const at = `messages[${i}]`;
    if (message.type === 'text') {
      add(`${at}.text`, lengthProblem(message.text, LIMITS.textLength));
      return;
    }
    add(`${at}.baseUrl`, httpsProblem(message.baseUrl, LIMITS.baseUrlLength));
    if (/\.(png|jpe?g|gif|webp)$/i.test(message.baseUrl)) add(`${at}.baseUrl`, 'must not end in a file extension (LINE appends /{width})');
    add(`${at}.altText`, lengthProblem(message.altText, LIMITS.altTextLength));
    const { width, height } = message.baseSize;
    if (width !== LIMITS.imagemapWidth) add(`${at}.baseSize.width`, `must be ${LIMITS.imagemapWidth}`);
    if (!Number.isInteger(height) || height < 1) add(`${at}.baseSize.height`, 'must be a positive integer');
    if (message.actions.length > LIMITS.imagemapActions) add(`${at}.actions`, `must hold at most ${LIMITS.imagemapActions} actions`);
    message.actions.forEach((action, j) => {
      add(`${at}.actions[${j}].linkUri`, httpsProblem(action.linkUri, LIMITS.linkUriLength));
      const a = action.area;
      const inside = [a.x, a.y, a.width, a.height].every(Number.isInteger) && a.x >= 0 && a.y >= 0 && a.width >= 1 && a.height >= 1 && a.x + a.width <= width && a.y + a.height <= height;
      if (!inside) add(`${at}.actions[${j}].area`, 'must lie inside the image (1040-wide coordinates)');
    });
  });
  return problems;
}

export function describeProblems(problems: readonly MessageProblem[]): string {
  return problems.map((p) => `${p.property}: ${p.message}`).join('; ');
}

const area = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() });

/** Messages read back from storage (multicast chunks) are parsed, not trusted. */
export const outMessagesSchema = z.array(
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('text'), text: z.string() }),
    z.object({
      type: z.literal('imagemap'),
      baseUrl: z.string(),
      altText: z.string(),
      baseSize: z.object({ width: z.number(), height: z.number() }),
      actions: z.array(z.object({ type: z.literal('uri'), linkUri: z.string(), area })),
    }),
  ]),
);
