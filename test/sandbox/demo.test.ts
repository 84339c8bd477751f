import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const DEMO = resolve(import.meta.dirname, '../../src/sandbox/demo.ts');

/** The demo is documented as a first thing to run: it must keep telling the same story. */
describe('npm run demo', () => {
  it('runs an evening end to end against the emulators and exits 0', async () => {
    const child = spawn(process.execPath, [DEMO], { env: { PATH: process.env.PATH ?? '' } });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    expect(out).toContain('trial-1 → host-3 (basic)');
    expect(out).toMatch(/verdicts: \{"ok":2,"ended_empty":1\}/);
    expect(out).toContain('GET /replay/');
    expect(out).toContain('the same bytes Zoom recorded');
    expect(out).toContain('deliveries: {"cancelled":1,"sent":5,"skipped":3}');
    expect(code).toBe(0);
  });
});
