/**
 * Request-body validation for the message endpoints. The OpenAPI spec omits most limits, so the
 * limits here are hand-written from docs/line-api.md §1, §6, §7. Errors use LINE's body shape.
 */
import { z } from 'zod';
import { errorBody, invalidPropertyBody, validationBody } from './errors.ts';
import type { LineErrorBody, LineErrorDetail } from './errors.ts';
import { USER_ID_PATTERN } from './ids.ts';

export const MAX_MESSAGES = 5;
export const MAX_MULTICAST_RECIPIENTS = 500;
export const MAX_TEXT_LENGTH = 5000;
export const IMAGEMAP_WIDTH = 1040;

/**
 * LINE's wording follows Bean Validation: a required string is "May not be empty" (@NotEmpty) and
 * its upper bound reads "Length must be between 0 and N" (@Size), as in the documented text error.
 * Lengths are UTF-16 code units (String#length), as LINE counts them; zod's own max() counts code
 * points for strings, so it is not used here.
 */
const length = (min: number, max: number) => {
  const range = `Length must be between ${min === 1 ? 0 : min} and ${max}`;
  return z
    .string()
    .refine((s) => s.length >= min, min === 1 ? 'May not be empty' : range)
    .refine((s) => s.length <= max, range);
};

const size = <T extends z.ZodType>(item: T, min: number, max: number) =>
  z
    .array(item)
    .min(min, `Size must be between ${min} and ${max}`)
    .max(max, `Size must be between ${min} and ${max}`);

/** Links must be https: LINE's FAQ says the chat client only opens https links (the reference also allows http/line/tel). */
const httpsUrl = (max: number) =>
  length(1, max).refine((s) => URL.canParse(s) && new URL(s).protocol === 'https:', 'Must be an https URL');

const area = z.object({
  x: z.int().min(0, 'Must be 0 or greater'),
  y: z.int().min(0, 'Must be 0 or greater'),
  width: z.int().min(1, 'Must be 1 or greater'),
  height: z.int().min(1, 'Must be 1 or greater'),
});

const label = length(0, 100).optional();

const imagemapAction = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('uri'), linkUri: httpsUrl(1000), label, area }),
  z.looseObject({ type: z.literal('message'), text: length(1, 400), label, area }),
  z.looseObject({ type: z.literal('clipboard'), clipboardText: length(1, 1000), label, area }),
]);

const textMessage = z.looseObject({
  type: z.literal('text'),
  text: length(1, MAX_TEXT_LENGTH),
  emojis: size(z.looseObject({ index: z.int().min(0), productId: z.string(), emojiId: z.string() }), 0, 20).optional(),
  quoteToken: z.string().optional(),
});

const imagemapMessage = z
  .looseObject({
    type: z.literal('imagemap'),
    baseUrl: httpsUrl(2000),
    altText: length(1, 1500),
    baseSize: z.object({
      width: z.literal(IMAGEMAP_WIDTH, `Must be ${IMAGEMAP_WIDTH}`),
      height: z.int().min(1, 'Must be 1 or greater'),
    }),
    actions: size(imagemapAction, 0, 50),
    video: z
      .looseObject({
        originalContentUrl: httpsUrl(2000),
        previewImageUrl: httpsUrl(2000),
        area,
        externalLink: z.looseObject({ linkUri: httpsUrl(1000), label: length(0, 30) }).optional(),
      })
      .optional(),
  })
  .superRefine((message, ctx) => {
    // Areas use the 1040-wide coordinate system of baseSize.
    const inside = (a: z.infer<typeof area>): boolean =>
      a.x + a.width <= IMAGEMAP_WIDTH && a.y + a.height <= message.baseSize.height;
    message.actions.forEach((action, i) => {
      if (!inside(action.area)) {
        ctx.addIssue({ code: 'custom', message: 'Area must be inside the image', path: ['actions', i, 'area'] });
      }
    });
    if (message.video && !inside(message.video.area)) {
      ctx.addIssue({ code: 'custom', message: 'Area must be inside the image', path: ['video', 'area'] });
    }
  });

/** Types we don't model in detail are accepted on `type` alone. */
const otherMessage = <T extends string>(type: T) => z.looseObject({ type: z.literal(type) });

const message = z.discriminatedUnion('type', [
  textMessage,
  imagemapMessage,
  otherMessage('image'),
  otherMessage('video'),
  otherMessage('audio'),
  otherMessage('location'),
  otherMessage('sticker'),
  otherMessage('template'),
  otherMessage('flex'),
]);

export type TextMessage = z.infer<typeof textMessage>;
export type ImagemapMessage = z.infer<typeof imagemapMessage>;
/** A message object as accepted by the emulator (unknown properties are kept as sent). */
export type LineMessage = z.infer<typeof message>;
export type OtherMessage = Exclude<LineMessage, TextMessage | ImagemapMessage>;

const messages = size(message, 1, MAX_MESSAGES);
const common = {
  messages,
  notificationDisabled: z.boolean().optional(),
  customAggregationUnits: size(length(1, 30), 0, 1).optional(),
};

const pushSchema = z.looseObject({ to: z.string().regex(USER_ID_PATTERN), ...common });
const multicastSchema = z.looseObject({
  to: size(z.string().regex(USER_ID_PATTERN, 'Invalid user ID'), 1, MAX_MULTICAST_RECIPIENTS),
  ...common,
});
const replySchema = z.looseObject({ replyToken: length(1, Infinity), messages, notificationDisabled: z.boolean().optional() });
const validatePushSchema = z.looseObject({ messages });

export type PushRequest = z.infer<typeof pushSchema>;
export type MulticastRequest = z.infer<typeof multicastSchema>;
export type ReplyRequest = z.infer<typeof replySchema>;

export type Validated<T> = { ok: true; value: T } | { ok: false; error: LineErrorBody };

/** Generic messages for issues that carry no message of their own. */
const lineIssueMessage = (issue: z.core.$ZodRawIssue): string => {
  if (issue.code === 'invalid_type') return issue.input === undefined ? 'May not be empty' : `Must be of type ${issue.expected}`;
  if (issue.code === 'invalid_union' && 'options' in issue && Array.isArray(issue.options)) {
    return `Must be one of the following values: [${issue.options.join(', ')}]`;
  }
  return 'Invalid value';
};

const property = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), '');

function run<S extends z.ZodType>(
  schema: S,
  body: unknown,
  mapTo?: (issues: z.core.$ZodIssue[]) => LineErrorBody | undefined,
): Validated<z.infer<S>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, error: errorBody('The request body must be a JSON object') };
  }
  const result = schema.safeParse(body, { error: lineIssueMessage });
  if (result.success) return { ok: true, value: result.data };
  const special = mapTo?.(result.error.issues);
  if (special) return { ok: false, error: special };
  const details: LineErrorDetail[] = result.error.issues.map((issue) => ({ message: issue.message, property: property(issue.path) }));
  return { ok: false, error: validationBody(details) };
}

/** A malformed push `to` gets LINE's "The property, 'to', … is invalid" body rather than details. */
const pushTo = (issues: z.core.$ZodIssue[]): LineErrorBody | undefined =>
  issues.some((issue) => issue.path[0] === 'to') ? invalidPropertyBody('to') : undefined;

export const validatePush = (body: unknown): Validated<PushRequest> => run(pushSchema, body, pushTo);
export const validateMulticast = (body: unknown): Validated<MulticastRequest> => run(multicastSchema, body);
export const validateReply = (body: unknown): Validated<ReplyRequest> => run(replySchema, body);
export const validateMessagesOnly = (body: unknown): Validated<z.infer<typeof validatePushSchema>> => run(validatePushSchema, body);
