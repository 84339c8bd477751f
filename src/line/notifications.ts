import type { Config } from '../config/schema.ts';
import { describeProblems, imagemapBaseUrl, imagemapMessage, messageProblems, textMessage, type OutMessage } from './messages.ts';
import { localTimes, renderTemplate, type TemplateValues } from './templates.ts';

/** The message kinds students receive, as named in `deliveries.kind`. */
export type NotificationKind = 'meeting_url' | 'feedback_url' | 'replay_url' | 'class_cancelled';

export interface NotificationInput {
  kind: NotificationKind;
  title: string;
  startsAt: Date;
  endsAt: Date;
  /** The Zoom join URL, the feedback form or the replay link ('' for a cancellation notice). */
  url: string;
}

/** The imagemap image in force: its content hash (the URL path) and its height at width 1040. */
export interface ImagemapRef {
  hash: string;
  height: number;
}

export type BuiltNotification = { ok: true; messages: OutMessage[] } | { ok: false; reason: string };

const SETTINGS: Record<Exclude<NotificationKind, 'class_cancelled'>, 'meetingUrl' | 'feedbackUrl' | 'replayUrl'> = { meeting_url: 'meetingUrl', feedback_url: 'feedbackUrl', replay_url: 'replayUrl' };

/**
 * Builds what one student receives for one delivery kind, in the configured form (imagemap or text),
 * and checks it against LINE's limits. Pure: the configuration and the image come in as values.
 */
export function buildNotification(config: Config, imagemap: ImagemapRef | undefined, input: NotificationInput): BuiltNotification {
  const values: TemplateValues = { title: input.title, url: input.url, ...localTimes(input.startsAt, input.endsAt, config.timezone) };
  // A cancellation notice carries no link: plain text.
  const settings = input.kind === 'class_cancelled' ? { format: 'text' as const, text: config.notifications.classCancelled.text, altText: '' } : config.notifications[SETTINGS[input.kind]];
  let messages: OutMessage[];
  if (settings.format === 'text') {
    messages = [textMessage(renderTemplate(settings.text, values))];
  } else {
    if (!imagemap) return { ok: false, reason: 'no imagemap image is ready' };
    messages = [
      imagemapMessage({
        baseUrl: imagemapBaseUrl(config.http.publicBaseUrl, imagemap.hash),
        altText: renderTemplate(settings.altText, values),
        linkUri: input.url,
        height: imagemap.height,
      }),
    ];
  }
  const problems = messageProblems(messages);
  return problems.length ? { ok: false, reason: `message breaks LINE's limits: ${describeProblems(problems)}` } : { ok: true, messages };
}
