import { describe, expect, it } from 'vitest';
import type { LineEmulator } from '../../../src/sandbox/line/index.ts';
import { ALICE, BOB, call, push, startWithChannel } from './helpers.ts';

const imagemap = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: 'imagemap',
  baseUrl: 'https://example.com/imagemap/abc',
  altText: 'Join today’s lesson',
  baseSize: { width: 1040, height: 1040 },
  actions: [
    { type: 'uri', linkUri: 'https://zoom.us/j/123?pwd=x', area: { x: 0, y: 0, width: 1040, height: 520 } },
    { type: 'uri', linkUri: 'https://forms.example.com/f', area: { x: 0, y: 520, width: 1040, height: 520 } },
  ],
  ...overrides,
});

const uri = (linkUri: string, area = { x: 0, y: 0, width: 10, height: 10 }) => ({ type: 'uri', linkUri, area });

async function expectInvalid(line: LineEmulator, body: unknown, property: string, message?: string | RegExp): Promise<void> {
  const res = await push(line, body);
  expect(res.status).toBe(400);
  const error = res.body as { message: string; details?: { message: string; property: string }[] };
  expect(error.message).toMatch(/^The request body has \d+ error\(s\)$/);
  const detail = error.details?.find((d) => d.property === property);
  expect(detail, JSON.stringify(error)).toBeDefined();
  if (message !== undefined) expect(detail?.message).toMatch(message);
  expect(line.received()).toEqual([]);
}

describe('message validation', () => {
  it('accepts a maximal valid push: 5 messages, 5000-unit text, a full imagemap', async () => {
    const line = await startWithChannel();
    const messages = [
      { type: 'text', text: 'x'.repeat(5000) },
      imagemap({ altText: 'a'.repeat(1500), actions: Array.from({ length: 50 }, (_, i) => uri(`https://e.x/${i}`)) }),
      { type: 'text', text: '🍎'.repeat(2500) },
      imagemap({ actions: [uri(`https://e.x/${'p'.repeat(1000 - 'https://e.x/'.length)}`, { x: 1030, y: 1030, width: 10, height: 10 })] }),
      { type: 'sticker', packageId: '446', stickerId: '1988' },
    ];
    const res = await push(line, { to: ALICE, messages });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // Imagemaps can't be quoted, so their sentMessages carry no quoteToken.
    const sent = (res.body as { sentMessages: { id: string; quoteToken?: string }[] }).sentMessages;
    expect(sent.map((s) => s.quoteToken !== undefined)).toEqual([true, false, true, false, true]);
    expect(line.received(ALICE)[0]?.messages).toEqual(messages);
  });

  it('messages: 1 to 5', async () => {
    const line = await startWithChannel();
    await expectInvalid(line, { to: ALICE, messages: [] }, 'messages', 'Size must be between 1 and 5');
    await expectInvalid(line, { to: ALICE, messages: Array.from({ length: 6 }, () => ({ type: 'text', text: 'x' })) }, 'messages', 'Size must be between 1 and 5');
    await expectInvalid(line, { to: ALICE }, 'messages', 'May not be empty');
  });

  it('text: non-empty, at most 5000 UTF-16 code units (an emoji counts 2)', async () => {
    const line = await startWithChannel();
    await expectInvalid(line, { to: ALICE, messages: [{ type: 'text', text: 'x'.repeat(5001) }] }, 'messages[0].text', 'Length must be between 0 and 5000');
    await expectInvalid(line, { to: ALICE, messages: [{ type: 'text', text: `${'🍎'.repeat(2500)}x` }] }, 'messages[0].text', 'Length must be between 0 and 5000');
    await expectInvalid(line, { to: ALICE, messages: [{ type: 'text', text: '' }] }, 'messages[0].text', 'May not be empty');
    await expectInvalid(line, { to: ALICE, messages: [{ type: 'text' }] }, 'messages[0].text', 'May not be empty');
  });

  it('unknown message type', async () => {
    const line = await startWithChannel();
    await expectInvalid(line, { to: ALICE, messages: [{ type: 'hologram' }] }, 'messages[0].type', /^Must be one of the following values/);
  });

  it('imagemap: https baseUrl, altText 1–1500, width 1040, ≤ 50 actions', async () => {
    const line = await startWithChannel();
    const one = (m: Record<string, unknown>) => ({ to: ALICE, messages: [m] });
    await expectInvalid(line, one(imagemap({ baseUrl: 'http://example.com/imagemap/abc' })), 'messages[0].baseUrl', 'Must be an https URL');
    await expectInvalid(line, one(imagemap({ baseUrl: `https://e.x/${'a'.repeat(2000)}` })), 'messages[0].baseUrl', 'Length must be between 0 and 2000');
    await expectInvalid(line, one(imagemap({ altText: '' })), 'messages[0].altText', 'May not be empty');
    await expectInvalid(line, one(imagemap({ altText: 'a'.repeat(1501) })), 'messages[0].altText', 'Length must be between 0 and 1500');
    await expectInvalid(line, one(imagemap({ baseSize: { width: 1039, height: 1040 } })), 'messages[0].baseSize.width', 'Must be 1040');
    await expectInvalid(
      line,
      one(imagemap({ actions: Array.from({ length: 51 }, (_, i) => uri(`https://e.x/${i}`)) })),
      'messages[0].actions',
      'Size must be between 0 and 50',
    );
  });

  it('imagemap: areas inside the canvas', async () => {
    const line = await startWithChannel();
    const one = (area: Record<string, number>) => ({
      to: ALICE,
      messages: [imagemap({ baseSize: { width: 1040, height: 700 }, actions: [uri('https://e.x/ok'), uri('https://e.x/a', area as never)] })],
    });
    await expectInvalid(line, one({ x: 1, y: 0, width: 1040, height: 10 }), 'messages[0].actions[1].area', 'Area must be inside the image');
    await expectInvalid(line, one({ x: 0, y: 600, width: 10, height: 101 }), 'messages[0].actions[1].area', 'Area must be inside the image');
    await expectInvalid(line, one({ x: -1, y: 0, width: 10, height: 10 }), 'messages[0].actions[1].area.x');
    await expectInvalid(line, one({ x: 0, y: 0, width: 0, height: 10 }), 'messages[0].actions[1].area.width');
    // Exactly on the edge is inside.
    expect((await push(line, one({ x: 1030, y: 690, width: 10, height: 10 }))).status).toBe(200);
  });

  it('imagemap: linkUri https and ≤ 1000', async () => {
    const line = await startWithChannel();
    const one = (linkUri: string) => ({ to: ALICE, messages: [imagemap({ actions: [uri(linkUri)] })] });
    await expectInvalid(line, one('http://zoom.us/j/1'), 'messages[0].actions[0].linkUri', 'Must be an https URL');
    await expectInvalid(line, one('tel:0312345678'), 'messages[0].actions[0].linkUri', 'Must be an https URL');
    await expectInvalid(line, one(`https://e.x/${'p'.repeat(1001 - 'https://e.x/'.length)}`), 'messages[0].actions[0].linkUri', 'Length must be between 0 and 1000');
  });

  it('push `to` must look like a user id', async () => {
    const line = await startWithChannel();
    for (const to of ['U123', 'Cdeadbeef', ALICE.toUpperCase(), 42]) {
      const res = await push(line, { to, messages: [{ type: 'text', text: 'x' }] });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ message: "The property, 'to', in the request body is invalid (line: -, column: -)" });
    }
  });

  it('multicast `to`: 1 to 500 user ids', async () => {
    const line = await startWithChannel();
    const multicast = (to: unknown) => call(line, 'POST', '/v2/bot/message/multicast', { body: { to, messages: [{ type: 'text', text: 'x' }] } });
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `U${i.toString(16).padStart(32, '0')}`);

    const empty = await multicast([]);
    expect(empty.status).toBe(400);
    expect(empty.body).toEqual({ message: 'The request body has 1 error(s)', details: [{ message: 'Size must be between 1 and 500', property: 'to' }] });
    expect((await multicast(ids(501))).status).toBe(400);
    const bad = await multicast([ALICE, 'nope']);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ details: [{ property: 'to[1]' }] });
    expect(line.received()).toEqual([]);
    expect((await multicast([...ids(499), BOB])).status).toBe(200);
    expect(line.received(BOB)).toHaveLength(1);
  });

  it('body errors: invalid JSON 400, wrong content type 415, over 2 MB 413', async () => {
    const line = await startWithChannel();
    const badJson = await call(line, 'POST', '/v2/bot/message/push', { rawBody: '{"to":' });
    expect(badJson.status).toBe(400);
    expect((badJson.body as { message: string }).message).toMatch(/^The request body could not be parsed as JSON/);

    const form = await call(line, 'POST', '/v2/bot/message/push', { rawBody: 'to=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).toBe(415);

    const huge = await push(line, { to: ALICE, messages: [{ type: 'text', text: 'x'.repeat(2 * 1024 * 1024) }] });
    expect(huge.status).toBe(413);
    expect(huge.headers.get('x-line-request-id')).toBeTruthy();
    expect(line.received()).toEqual([]);
  });

  it('validate/push checks messages without sending', async () => {
    const line = await startWithChannel();
    const ok = await call(line, 'POST', '/v2/bot/message/validate/push', { body: { messages: [{ type: 'text', text: 'x' }] } });
    expect(ok.status).toBe(200);
    const bad = await call(line, 'POST', '/v2/bot/message/validate/push', { body: { messages: [{ type: 'text', text: '' }] } });
    expect(bad.status).toBe(400);
    expect(line.received()).toEqual([]);
  });
});
