import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import {
  IMAGEMAP_WIDTHS,
  imagemapBaseUrl,
  imagemapMessage,
  messageProblems,
  textMessage,
  type ImagemapMessage,
  type OutMessage,
} from '../../src/line/messages.ts';
import { buildNotification } from '../../src/line/notifications.ts';
import { localTimes, MAX_VALUE_LENGTH, parseTemplate, renderTemplate, templateProblems, worstCaseLength } from '../../src/line/templates.ts';

const LINK = 'https://zoom.us/j/81234567890?pwd=abc';
const imagemap = (over: Partial<ImagemapMessage> = {}): ImagemapMessage => ({
  ...imagemapMessage({ baseUrl: 'https://sched.example.test/imagemap/0123456789abcdef0123', altText: 'Join', linkUri: LINK, height: 520 }),
  ...over,
});
const props = (messages: OutMessage[]): string[] => messageProblems(messages).map((p) => p.property);

describe('message limits (counted in UTF-16 units, as LINE does)', () => {
  it('text: 1 to 5,000 units; an emoji counts as 2', () => {
    expect(props([textMessage('a'.repeat(5000))])).toEqual([]);
    expect(props([textMessage('a'.repeat(5001))])).toEqual(['messages[0].text']);
    expect(props([textMessage('')])).toEqual(['messages[0].text']);
    expect(props([textMessage('🍎'.repeat(2500))])).toEqual([]);
    expect(props([textMessage('🍎'.repeat(2500) + 'a')])).toEqual(['messages[0].text']);
  });

  it('one to five messages per request', () => {
    expect(props([])).toEqual(['messages']);
    expect(props(Array.from({ length: 5 }, () => textMessage('x')))).toEqual([]);
    expect(props(Array.from({ length: 6 }, () => textMessage('x')))).toEqual(['messages']);
  });

  it('imagemap: altText 1–1,500, https baseUrl ≤ 2,000 without extension, width 1040, link https ≤ 1,000, areas inside', () => {
    expect(props([imagemap()])).toEqual([]);
    expect(props([imagemap({ altText: 'a'.repeat(1500) })])).toEqual([]);
    expect(props([imagemap({ altText: '字'.repeat(1501) })])).toEqual(['messages[0].altText']);
    expect(props([imagemap({ altText: '' })])).toEqual(['messages[0].altText']);
    expect(props([imagemap({ baseUrl: 'http://sched.example.test/imagemap/x' })])).toEqual(['messages[0].baseUrl']);
    expect(props([imagemap({ baseUrl: `https://x.test/${'a'.repeat(2000)}` })])).toEqual(['messages[0].baseUrl']);
    expect(props([imagemap({ baseUrl: 'https://x.test/imagemap/a.png' })])).toEqual(['messages[0].baseUrl']);
    expect(props([imagemap({ baseSize: { width: 700, height: 520 } })])).toContain('messages[0].baseSize.width');
    const longLink = `https://x.test/?q=${'a'.repeat(1000)}`;
    expect(props([imagemapMessage({ baseUrl: 'https://x.test/i', altText: 'a', linkUri: longLink, height: 520 })])).toEqual(['messages[0].actions[0].linkUri']);
    expect(props([imagemapMessage({ baseUrl: 'https://x.test/i', altText: 'a', linkUri: 'https://x.test/a b', height: 520 })])).toEqual(['messages[0].actions[0].linkUri']);
    expect(props([imagemapMessage({ baseUrl: 'https://x.test/i', altText: 'a', linkUri: 'line://x', height: 520 })])).toEqual(['messages[0].actions[0].linkUri']);
    const outside = imagemap();
    outside.actions = [{ type: 'uri', linkUri: LINK, area: { x: 0, y: 1, width: 1040, height: 520 } }];
    expect(props([outside])).toEqual(['messages[0].actions[0].area']);
    const many = imagemap();
    many.actions = Array.from({ length: 51 }, () => ({ type: 'uri' as const, linkUri: LINK, area: { x: 0, y: 0, width: 10, height: 10 } }));
    expect(props([many])).toEqual(['messages[0].actions']);
  });

  it('the imagemap builder makes one tap target over the whole image at width 1040', () => {
    expect(imagemapMessage({ baseUrl: 'https://s.test/imagemap/h', altText: 'alt', linkUri: LINK, height: 700 })).toEqual({
      type: 'imagemap',
      baseUrl: 'https://s.test/imagemap/h',
      altText: 'alt',
      baseSize: { width: 1040, height: 700 },
      actions: [{ type: 'uri', linkUri: LINK, area: { x: 0, y: 0, width: 1040, height: 700 } }],
    });
    expect(imagemapBaseUrl('https://s.test/', 'h1')).toBe('https://s.test/imagemap/h1');
    expect(imagemapBaseUrl('https://s.test/prefix', 'h1')).toBe('https://s.test/prefix/imagemap/h1');
    expect(IMAGEMAP_WIDTHS).toEqual([240, 300, 460, 700, 1040]);
  });
});

describe('templates', () => {
  const values = { title: '英文會話', date: '12/1（二）', start: '19:00', end: '19:50', url: LINK };

  it('renders placeholders and literal braces', () => {
    expect(renderTemplate('{title} {date} {start}–{end} {url}', values)).toBe(`英文會話 12/1（二） 19:00–19:50 ${LINK}`);
    expect(renderTemplate('{{title}} is {title}', values)).toBe('{title} is 英文會話');
    expect(renderTemplate('{ url }', values)).toBe(LINK);
  });

  it('rejects unknown placeholders and stray braces, naming the problem', () => {
    expect(parseTemplate('hi {name}')).toEqual({ ok: false, problem: expect.stringContaining('unknown placeholder {name}') });
    expect(parseTemplate('hi {title')).toEqual({ ok: false, problem: expect.stringContaining('unclosed "{"') });
    expect(parseTemplate('hi }')).toEqual({ ok: false, problem: expect.stringContaining('unmatched "}"') });
  });

  it('checks the longest possible rendering against the limit, and required placeholders', () => {
    const rule = { maxLength: 1500 };
    const fits = `${'x'.repeat(1500 - MAX_VALUE_LENGTH.url - MAX_VALUE_LENGTH.title)}{title}{url}`;
    expect(worstCaseLength((parseTemplate(fits) as { ok: true; parts: never[] }).parts)).toBe(1500);
    expect(templateProblems(fits, rule)).toEqual([]);
    expect(templateProblems(`x${fits}`, rule)).toEqual([expect.stringContaining('can render to 1501 characters')]);
    expect(templateProblems('no link here', { maxLength: 5000, required: ['url'] })).toEqual(['must contain {url}']);
    expect(templateProblems('   ', { maxLength: 5000 })).toEqual(['must not be empty']);
  });

  it('local times in the business time zone, in the compact Taiwanese form', () => {
    expect(localTimes(new Date('2026-12-01T11:00:00Z'), new Date('2026-12-01T11:50:00Z'), 'Asia/Taipei')).toEqual({ date: '12/1（二）', start: '19:00', end: '19:50' });
    // Crossing midnight locally: the date is the local one.
    expect(localTimes(new Date('2026-12-31T16:30:00Z'), new Date('2026-12-31T17:30:00Z'), 'Asia/Taipei')).toEqual({ date: '1/1（五）', start: '00:30', end: '01:30' });
    expect(localTimes(new Date('2026-12-31T16:30:00Z'), new Date('2026-12-31T17:30:00Z'), 'UTC')).toEqual({ date: '12/31（四）', start: '16:30', end: '17:30' });
    // Every weekday name is right.
    const names = Array.from({ length: 7 }, (_, i) => localTimes(new Date(Date.UTC(2026, 10, 29 + i, 2)), new Date(Date.UTC(2026, 10, 29 + i, 3)), 'Asia/Taipei').date);
    expect(names).toEqual(['11/29（日）', '11/30（一）', '12/1（二）', '12/2（三）', '12/3（四）', '12/4（五）', '12/5（六）']);
  });
});

describe('notifications from configuration', () => {
  const input = { kind: 'meeting_url' as const, title: '英文會話 A1', startsAt: new Date('2026-12-01T11:00:00Z'), endsAt: new Date('2026-12-01T11:50:00Z'), url: LINK };
  const image = { hash: '0123456789abcdef0123', height: 520 };

  it('default: an imagemap in Traditional Chinese whose altText carries the class, the local time and the link', () => {
    const config = parseConfig({ http: { publicBaseUrl: 'https://sched.example.test' } }, 'test');
    const built = buildNotification(config, image, input);
    expect(built).toEqual({
      ok: true,
      messages: [imagemapMessage({ baseUrl: 'https://sched.example.test/imagemap/0123456789abcdef0123', altText: `【上課提醒】英文會話 A1 12/1（二） 19:00 開課，進入教室：${LINK}`, linkUri: LINK, height: 520 })],
    });
    const feedback = buildNotification(config, image, { ...input, kind: 'feedback_url', url: 'https://forms.example.com/f?s=1' });
    expect(feedback.ok && feedback.messages[0]?.type === 'imagemap' && feedback.messages[0].altText).toBe('【課後回饋】英文會話 A1，填寫回饋：https://forms.example.com/f?s=1');
  });

  it('format text puts the link in a text message; the format is per kind', () => {
    const config = parseConfig({ http: { publicBaseUrl: 'https://sched.example.test' }, notifications: { meetingUrl: { format: 'text' } } }, 'test');
    expect(buildNotification(config, image, input)).toEqual({
      ok: true,
      messages: [{ type: 'text', text: `【上課提醒】英文會話 A1\n時間：12/1（二） 19:00–19:50\n請點以下連結進入 Zoom 教室：\n${LINK}` }],
    });
    const feedback = buildNotification(config, image, { ...input, kind: 'feedback_url' });
    expect(feedback.ok && feedback.messages[0]?.type).toBe('imagemap');
  });

  it('a link LINE would refuse fails the build with the reason, rather than at LINE', () => {
    const config = parseConfig({ http: { publicBaseUrl: 'https://sched.example.test' } }, 'test');
    expect(buildNotification(config, image, { ...input, url: 'http://zoom.us/j/1' })).toEqual({ ok: false, reason: expect.stringContaining('linkUri: must be an https URL') });
    expect(buildNotification(config, undefined, input)).toEqual({ ok: false, reason: 'no imagemap image is ready' });
  });

  it('imagemap needs an https public base URL, except on a loopback development set-up', () => {
    expect(() => parseConfig({ http: { publicBaseUrl: 'http://sched.example.com' } }, 'test')).toThrow(/notifications.meetingUrl.format: imagemap needs an https/);
    expect(() => parseConfig({ http: { publicBaseUrl: 'http://sched.example.com' }, notifications: { meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' } } }, 'test')).not.toThrow();
    expect(() => parseConfig({}, 'test')).not.toThrow();
  });
});

describe('templates are validated at load and reload', () => {
  it('a bad template names its key at load', () => {
    const cases: [unknown, RegExp][] = [
      [{ notifications: { meetingUrl: { text: '{title} {link}' } } }, /notifications\.meetingUrl\.text: unknown placeholder \{link\}/],
      [{ notifications: { feedbackUrl: { text: '{title}' } } }, /notifications\.feedbackUrl\.text: must contain \{url\}/],
      [{ notifications: { meetingUrl: { altText: `${'字'.repeat(501)}{url}` } } }, /notifications\.meetingUrl\.altText: can render to 1501 characters/],
      [{ notifications: { meetingUrl: { format: 'flex' } } }, /notifications\.meetingUrl\.format/],
    ];
    for (const [raw, message] of cases) {
      let error: unknown;
      try {
        parseConfig(raw, 'test');
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(raw)).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('a reload with a bad template is rejected and the previous templates stay in force', () => {
    const dir = mkdtempSync(join(tmpdir(), 'line-templates-'));
    try {
      const file = join(dir, 'scheduler.yaml');
      writeFileSync(file, 'notifications:\n  meetingUrl:\n    format: text\n    text: "上課囉 {url}"\n');
      const store = createConfigStore(loadConfig({ file, env: {} }), { file, env: {} }, virtualClock());
      writeFileSync(file, 'notifications:\n  meetingUrl:\n    format: text\n    text: "上課囉 {zoom}"\n');
      const rejected = store.reload('api');
      expect(rejected).toMatchObject({ status: 'rejected', error: expect.stringContaining('notifications.meetingUrl.text: unknown placeholder {zoom}') });
      expect(store.current().notifications.meetingUrl.text).toBe('上課囉 {url}');
      writeFileSync(file, 'notifications:\n  meetingUrl:\n    format: text\n    text: "快上課 {url}"\n');
      expect(store.reload('api')).toMatchObject({ status: 'applied', changed: ['notifications.meetingUrl.text'] });
      expect(store.current().notifications.meetingUrl.text).toBe('快上課 {url}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
