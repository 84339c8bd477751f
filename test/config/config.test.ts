import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/config/duration.ts';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.ts';
import { redactConfig, redactUrl } from '../../src/config/store.ts';
import { requiresRestart } from '../../src/config/schema.ts';
import { renderImagemap } from '../../src/line/imagemap-render.ts';

describe('durations', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['48h', 172_800_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['200ms', 200],
    ['1.5s', 1_500],
  ])('parses %s', (text, ms) => {
    expect(parseDuration(text)?.ms).toBe(ms);
    expect(JSON.stringify(parseDuration(text))).toBe(JSON.stringify(text));
  });
  it.each(['', '5', 'm5', '5 minutes', '5x', '-5m', '5m ', '1h 30m'])('rejects %j', (text) => {
    // A trailing space is trimmed; anything else malformed is refused.
    if (text === '5m ') expect(parseDuration(text)?.ms).toBe(300_000);
    else expect(parseDuration(text)).toBeUndefined();
  });
  it('formats back', () => {
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(1_500)).toBe('1500ms');
    expect(formatDuration(86_400_000)).toBe('1d');
  });
});

describe('loading the configuration', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('has defaults good for the embedded demo', () => {
    const config = loadConfig({ env: {} });
    expect(config.database.url).toBe('sqlite:./data/scheduler.db');
    expect(config.timezone).toBe('Asia/Taipei');
    expect(config.http.port).toBe(3000);
    expect(config.zoom.apiBaseUrl).toBe('https://api.zoom.us/v2');
    expect(config.zoom.oauthUrl).toBe('https://zoom.us/oauth/token');
    expect(config.line.apiBaseUrl).toBe('https://api.line.me');
    expect(config.reload.debounce.ms).toBe(200);
    expect(Object.isFrozen(config.http)).toBe(true);
  });

  it('reads YAML and lets the environment override any key', () => {
    const file = join(dir, 'scheduler.yaml');
    writeFileSync(file, 'timezone: Europe/Berlin\nhttp:\n  port: 8080\n  publicBaseUrl: https://sched.example.com\nzoom:\n  requestTimeout: 30s\n');
    const config = loadConfig({
      file,
      env: { SCHEDULER__HTTP__PORT: '9090', SCHEDULER__DATABASE__URL: 'postgres://u:p@db/x', SCHEDULER__LOG__LEVEL: 'debug', UNRELATED: '1' },
    });
    expect(config.timezone).toBe('Europe/Berlin');
    expect(config.http.port).toBe(9090);
    expect(config.http.publicBaseUrl).toBe('https://sched.example.com');
    expect(config.database.url).toBe('postgres://u:p@db/x');
    expect(config.log.level).toBe('debug');
    expect(config.zoom.requestTimeout.ms).toBe(30_000);
  });

  it.each([
    [{ http: { port: 'eighty' } }, 'http.port'],
    [{ http: { port: 70000 } }, 'http.port'],
    [{ timezone: 'Mars/Olympus' }, 'timezone'],
    [{ zoom: { requestTimeout: 'soon' } }, 'zoom.requestTimeout'],
    [{ database: { url: 'mysql://x' } }, 'database.url'],
    [{ zoom: { apiBaseUrl: 'ftp://x' } }, 'zoom.apiBaseUrl'],
    [{ htpp: { port: 1 } }, '"htpp"'],
    [{ http: { prot: 1 } }, '"http.prot"'],
  ])('rejects %j with an error naming %s', (raw, key) => {
    expect(() => parseConfig(raw, 'test')).toThrow(ConfigError);
    try {
      parseConfig(raw, 'test');
    } catch (error) {
      expect((error as ConfigError).message).toContain(key);
    }
  });

  /** `{ a: { b: value } }` from `a.b`. */
  const at = (key: string, value: unknown): Record<string, unknown> => key.split('.').reduceRight<Record<string, unknown>>((inner, part) => ({ [part]: inner }), value as Record<string, unknown>);

  // A loop, poll or sweep of (nearly) no time would spin, and a lease that short is taken over mid-send.
  it.each([
    ['zoom.provisioning.interval', '0s', '1s'],
    ['zoom.provisioning.lease', '4s', '5s'],
    ['line.channelRefresh', '0s', '1s'],
    ['line.eventSweep', '999ms', '1s'],
    ['line.quotaRecheck', '0s', '1s'],
    ['notifications.lease', '0ms', '5s'],
    ['notifications.pollInterval', '0s', '1s'],
    ['notifications.pausedRetry', '0s', '1s'],
    ['monitor.interval', '0s', '1s'],
    ['monitor.eventSweep', '0s', '1s'],
    ['recordings.sweepInterval', '59s', '1m'],
    ['recordings.lease', '1s', '5s'],
  ])('rejects %s: %s, naming the key and its floor (%s), and takes the floor itself', (key, tooShort, floor) => {
    expect(() => parseConfig(at(key, tooShort), 'test')).toThrow(`${key}: must be at least ${floor}`);
    expect(() => parseConfig(at(key, floor), 'test')).not.toThrow();
  });

  it('reports YAML syntax errors and unreadable files as config errors', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'http: [unclosed\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/YAML syntax error/);
    expect(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).toThrow(/cannot read/);
  });

  it('redacts passwords in the database URL when shown', () => {
    const config = parseConfig({ database: { url: 'postgres://app:hunter2@db:5432/sched' } }, 'test');
    expect(JSON.stringify(redactConfig(config))).not.toContain('hunter2');
    expect(JSON.stringify(redactConfig(config))).toContain('postgres://app:***@db:5432/sched');
  });

  it('redacts a password given as a query parameter, which node-postgres reads like user:pass@', () => {
    const url = 'postgres://db.internal:5432/scheduler?user=app&password=hunter2&sslmode=require&sslpassword=keypass';
    // One function for GET /api/config, the "database ready" log and `scheduler migrate`.
    expect(redactUrl(url)).toBe('postgres://db.internal:5432/scheduler?user=app&password=***&sslmode=require&sslpassword=***');
    const shown = JSON.stringify(redactConfig(parseConfig({ database: { url } }, 'test')));
    expect(shown).not.toContain('hunter2');
    expect(shown).not.toContain('keypass');
    expect(redactUrl('postgres://app:p%@db/x?PassWord=hunter2')).not.toContain('hunter2');
    // The rest of the query reads as written: masking must not re-encode it.
    expect(redactUrl('postgres://app:pw@db/x?options=-c%20search_path%3Dtenant_a&password=s3cret')).toBe('postgres://app:***@db/x?options=-c%20search_path%3Dtenant_a&password=***');
  });

  it('reads a flow list or mapping from the environment only for a key that takes one: a template `{url}` or a text `[Class link]` stays text', () => {
    const config = loadConfig({ env: { SCHEDULER__NOTIFICATIONS__MEETING_URL__TEXT: '{url}', SCHEDULER__NOTIFICATIONS__MEETING_URL__ALT_TEXT: '[Class link]', SCHEDULER__RECORDINGS__FILE_TYPES: '[MP4]' } });
    expect(config.notifications.meetingUrl.text).toBe('{url}');
    expect(config.notifications.meetingUrl.altText).toBe('[Class link]');
    expect(config.recordings.fileTypes).toEqual(['MP4']);
  });

  it('accepts an SVG whose DOCTYPE has an internal subset (as Adobe Illustrator writes it) as imagemap.source', async () => {
    const svg = `<?xml version="1.0" encoding="utf-8"?>
<!-- Generator: Adobe Illustrator 24.0.0, SVG Export Plug-In  -->
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [
\t<!ENTITY ns_svg "http://www.w3.org/2000/svg">
\t<!ENTITY ns_xlink "http://www.w3.org/1999/xlink">
]>
<svg version="1.1" xmlns="&ns_svg;" xmlns:xlink="&ns_xlink;" width="1040" height="520" viewBox="0 0 1040 520">
<rect width="1040" height="520" fill="#3366cc"/>
</svg>
`;
    // The runtime can use it, so the configuration must accept it.
    expect((await renderImagemap(Buffer.from(svg))).height).toBeGreaterThan(0);
    const file = join(dir, 'map.svg');
    writeFileSync(file, svg);
    expect(loadConfig({ env: { SCHEDULER__IMAGEMAP__SOURCE: file } }).imagemap.source).toBe(file);
  });

  it('keeps an environment text value whole when it holds " #", which YAML would read as a comment', () => {
    const text = 'Class {title} #3 starts {date} {start}: {url}';
    const config = loadConfig({ env: { SCHEDULER__NOTIFICATIONS__MEETING_URL__ALT_TEXT: text } });
    expect(config.notifications.meetingUrl.altText).toBe(text);
  });

  it('reads numbers, booleans, null, whole quoted strings and clean flow lists from the environment, and anything else as written', () => {
    const config = loadConfig({
      env: { SCHEDULER__HTTP__PORT: '8080', SCHEDULER__RELOAD__WATCH: 'false', SCHEDULER__IMAGEMAP__SOURCE: 'null', SCHEDULER__RECORDINGS__FILE_TYPES: '[mp4, "M4A"]' },
    });
    expect(config.http.port).toBe(8080);
    expect(config.reload.watch).toBe(false);
    expect(config.imagemap.source).toBeNull();
    expect(config.recordings.fileTypes).toEqual(['MP4', 'M4A']);
    expect(loadConfig({ env: { SCHEDULER__NOTIFICATIONS__MEETING_URL__ALT_TEXT: '"8080 #1"' } }).notifications.meetingUrl.altText).toBe('8080 #1');
    expect(loadConfig({ env: { SCHEDULER__NOTIFICATIONS__MEETING_URL__ALT_TEXT: "'it''s on'" } }).notifications.meetingUrl.altText).toBe("it's on");
    for (const text of ['8080 # port', '"quoted" and more', '[Join, now', '- Join', 'Join: now', 'true story', 'https://x.example.com/#top']) {
      expect(loadConfig({ env: { SCHEDULER__NOTIFICATIONS__MEETING_URL__ALT_TEXT: text } }).notifications.meetingUrl.altText).toBe(text);
    }
  });

  it('accepts as imagemap.source only a file that is an image, naming the key otherwise', () => {
    const svg = join(dir, 'logo.svg');
    writeFileSync(svg, '<?xml version="1.0"?>\n<!-- logo -->\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="5"/>\n');
    expect(parseConfig({ imagemap: { source: svg } }, 'test').imagemap.source).toBe(svg);
    const text = join(dir, 'logo.png');
    writeFileSync(text, 'this is not an image');
    expect(() => parseConfig({ imagemap: { source: text } }, 'test')).toThrow(/imagemap\.source: file ".+logo\.png" is not a PNG, JPEG, WebP or SVG image/);
    expect(() => parseConfig({ imagemap: { source: join(dir, 'missing.png') } }, 'test')).toThrow(/imagemap\.source: file ".+missing\.png" not found/);
  });

  it('knows which keys need a restart', () => {
    expect(requiresRestart('database.url')).toBe(true);
    expect(requiresRestart('http.port')).toBe(true);
    expect(requiresRestart('http.publicBaseUrl')).toBe(false);
    expect(requiresRestart('log.level')).toBe(false);
  });
});
