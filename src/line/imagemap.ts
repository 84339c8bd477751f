import { readFile } from 'node:fs/promises';
import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { defaultImagemapSource, imagemapHash, renderImagemap, type RenderedImagemap } from './imagemap-render.ts';
import { LIMITS } from './messages.ts';
import type { ImagemapRef } from './notifications.ts';

/**
 * Imagemap images: rendered once per source image and stored in the database, so the bytes behind
 * `/imagemap/{hash}/{width}` never change, every replica serves them, and messages sent before a
 * new image was configured keep showing the old one.
 */
export async function saveImagemap(db: Db, clock: Clock, rendered: RenderedImagemap): Promise<void> {
  await db
    .insertInto('imagemap_images')
    .values(
      rendered.renditions.map((r) => ({
        hash: rendered.hash,
        width: r.width,
        height: r.height,
        content_type: rendered.contentType,
        bytes: r.bytes,
        created_at: clock.now(),
      })),
    )
    .onConflict((oc) => oc.columns(['hash', 'width']).doNothing())
    .execute();
}

export interface ImagemapImage {
  bytes: Buffer;
  contentType: string;
}

export async function getImagemapImage(db: Db, hash: string, width: number): Promise<ImagemapImage | undefined> {
  const row = await db.selectFrom('imagemap_images').select(['bytes', 'content_type']).where('hash', '=', hash).where('width', '=', width).executeTakeFirst();
  return row ? { bytes: Buffer.from(row.bytes), contentType: row.content_type } : undefined;
}

export interface ImagemapImages {
  /** The image in force for new messages (undefined until `ensure` succeeded once). */
  current(): ImagemapRef | undefined;
  /**
   * Renders and stores the configured source unless already stored; makes it current unless a later
   * `ensure` was called meanwhile (the later source wins, whichever finishes first). Resolves to this
   * call's image.
   */
  ensure(): Promise<ImagemapRef>;
  get(hash: string, width: number): Promise<ImagemapImage | undefined>;
  /** Resolves once the latest `ensure` has finished, well or not. */
  settled(): Promise<void>;
}

const CACHE_ENTRIES = 20;

export function createImagemapImages(deps: { db: Db; clock: Clock; config: ConfigStore }): ImagemapImages {
  let current: ImagemapRef | undefined;
  let latest: Promise<unknown> = Promise.resolve();
  // Each call's number: a slow render of an older source must not replace a newer one already in force.
  let requested = 0;
  const cache = new Map<string, ImagemapImage>();

  const ensure = async (generation: number): Promise<ImagemapRef> => {
    const settle = (ref: ImagemapRef): ImagemapRef => {
      if (generation === requested) current = ref;
      return ref;
    };
    const path = deps.config.current().imagemap.source;
    const source = path === null ? defaultImagemapSource() : await readFile(path);
    const hash = imagemapHash(source);
    const stored = await deps.db
      .selectFrom('imagemap_images')
      .select('height')
      .where('hash', '=', hash)
      .where('width', '=', LIMITS.imagemapWidth)
      .executeTakeFirst();
    if (stored) return settle({ hash, height: stored.height });
    const rendered = await renderImagemap(source);
    await saveImagemap(deps.db, deps.clock, rendered);
    return settle({ hash: rendered.hash, height: rendered.height });
  };

  return {
    current: () => current,
    ensure() {
      const run = ensure(++requested);
      latest = run.catch(() => undefined);
      return run;
    },
    async settled() {
      await latest;
    },
    async get(hash, width) {
      const key = `${hash}/${width}`;
      const hit = cache.get(key);
      if (hit) return hit;
      const image = await getImagemapImage(deps.db, hash, width);
      if (image) {
        if (cache.size >= CACHE_ENTRIES) cache.delete(cache.keys().next().value ?? '');
        cache.set(key, image);
      }
      return image;
    },
  };
}
