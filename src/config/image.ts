import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** Enough of the file to see a raster header or an SVG root element behind an XML prologue. */
const HEAD_BYTES = 64 * 1024;

/**
 * Why the file at `path` cannot be an imagemap source (PNG, JPEG, WebP or SVG), or undefined if its
 * header says it is one. Synchronous on purpose: the schema runs it, and a config reload must be
 * accepted or rejected before it returns (full decoding is async; the runtime still checks that at start).
 */
export function imageProblem(path: string): string | undefined {
  let head: Buffer;
  try {
    const stat = statSync(path);
    // Only a regular file can be read here without blocking (opening a named pipe waits for a writer);
    // anything else is left to the runtime, which reads it asynchronously.
    if (!stat.isFile()) return undefined;
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(HEAD_BYTES);
      head = buffer.subarray(0, readSync(fd, buffer, 0, HEAD_BYTES, 0));
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `file "${path}" not found` : `file "${path}" cannot be read (${code ?? 'error'})`;
  }
  if (rasterSize(head) ?? isSvg(head)) return undefined;
  return `file "${path}" is not a PNG, JPEG, WebP or SVG image`;
}

/** True for a raster header with non-zero dimensions (JPEG: its signature; its size comes later in the file). */
function rasterSize(head: Buffer): true | undefined {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (head.length >= 24 && head.subarray(0, 8).equals(png) && head.toString('latin1', 12, 16) === 'IHDR') {
    return head.readUInt32BE(16) > 0 && head.readUInt32BE(20) > 0 ? true : undefined;
  }
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return true;
  if (head.length >= 16 && head.toString('latin1', 0, 4) === 'RIFF' && head.toString('latin1', 8, 12) === 'WEBP' && head.toString('latin1', 12, 15) === 'VP8') return true;
  return undefined;
}

/** An XML document whose root element is <svg> (after any declaration, comments or doctype). */
function isSvg(head: Buffer): boolean {
  const text = head.toString('utf8').replace(/^\uFEFF/, '');
  // A DOCTYPE may carry an internal subset in [...] (Illustrator declares its namespaces there as entities).
  const prologue = /^\s*(?:<\?xml[^>]*\?>\s*|<!--[\s\S]*?-->\s*|<!DOCTYPE[^>[]*(?:\[[\s\S]*?\]\s*)?>\s*)*<svg[\s>]/i;
  return prologue.test(text);
}
