import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { IMAGEMAP_WIDTHS, LIMITS } from './messages.ts';

/** Part of every hash: bump it when rendering changes, so new bytes get a new path and old paths stay as they were. */
const RENDER_VERSION = 'imagemap-v1';

/** LINE's size limit for one imagemap image. */
const MAX_BYTES = 10 * 1024 * 1024;

export interface Rendition {
  width: number;
  height: number;
  bytes: Buffer;
}

export interface RenderedImagemap {
  hash: string;
  /** Height at width 1040: the imagemap's baseSize.height. */
  height: number;
  contentType: 'image/png' | 'image/jpeg';
  renditions: Rendition[];
}

/** The path segment for a source image: same bytes, same path, on every replica and after every restart. */
export function imagemapHash(source: Buffer): string {
  return createHash('sha256').update(RENDER_VERSION).update(source).digest('hex').slice(0, 20);
}

export const IMAGEMAP_HASH = /^[0-9a-f]{20}$/;

/**
 * The five widths LINE clients ask for, from one source image. JPEG sources stay JPEG (photos);
 * anything else becomes PNG.
 */
export async function renderImagemap(source: Buffer): Promise<RenderedImagemap> {
  const meta = await sharp(source).metadata();
  if (!meta.width || !meta.height) throw new Error('the imagemap source is not an image sharp can read');
  const jpeg = meta.format === 'jpeg';
  const renditions: Rendition[] = [];
  for (const width of IMAGEMAP_WIDTHS) {
    // SVGs are rasterised at the density that makes them exactly this wide, so text and edges stay sharp.
    const density = meta.format === 'svg' ? Math.max(1, Math.round((72 * width) / meta.width)) : undefined;
    const pipeline = sharp(source, density ? { density } : {}).resize({ width });
    const { data, info } = await (jpeg ? pipeline.jpeg({ quality: 85, mozjpeg: true }) : pipeline.png({ compressionLevel: 9 })).toBuffer({ resolveWithObject: true });
    if (data.length > MAX_BYTES) throw new Error(`the ${width}px imagemap image is ${data.length} bytes, over LINE's 10 MB`);
    renditions.push({ width, height: info.height, bytes: data });
  }
  const full = renditions.find((r) => r.width === LIMITS.imagemapWidth);
  return { hash: imagemapHash(source), height: full?.height ?? 0, contentType: jpeg ? 'image/jpeg' : 'image/png', renditions };
}

/** The built-in image: a "tap to open" button on LINE green, with no text (no fonts needed). */
export function defaultImagemapSource(): Buffer {
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="520" viewBox="0 0 1040 520">
  <defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#06c755"/><stop offset="1" stop-color="#03933f"/></linearGradient></defs>
  <rect width="1040" height="520" fill="url(#bg)"/>
  <circle cx="120" cy="90" r="160" fill="#ffffff" opacity="0.08"/>
  <circle cx="960" cy="470" r="200" fill="#ffffff" opacity="0.08"/>
  <rect x="220" y="170" width="600" height="180" rx="90" fill="#ffffff"/>
  <circle cx="330" cy="260" r="56" fill="#06c755"/>
  <path d="M312 226 L362 260 L312 294 Z" fill="#ffffff"/>
  <rect x="420" y="246" width="250" height="28" rx="14" fill="#06c755"/>
  <path d="M660 214 L720 260 L660 306 Z" fill="#06c755"/>
</svg>`);
}
