import * as nodePath from 'node:path';
import type { ImageFileSystem } from '../image/file-system.ts';
import { FileFeed, type ImageFeed } from '../live-image.ts';
import type { ResolvedReplica } from '../options.ts';
import { withReaddir } from './file-system.ts';
import { LiteFsFeed } from './litefs.ts';
import { LitestreamFeed } from './litestream.ts';

/** The feed that reads the database at `path` the way its `replica` option says it is written. */
export function replicaFeed(path: string, fs: ImageFileSystem, replica: ResolvedReplica): ImageFeed {
  switch (replica.kind) {
    case 'sqlite':
      return new FileFeed(path, fs);
    case 'litestream':
      return new LitestreamFeed(path, fs);
    case 'litefs':
      return new LiteFsFeed(path, withReaddir(fs), {
        dataDir: replica.dataDir,
        name: replica.name ?? nodePath.basename(path),
        ...(replica.url === undefined ? {} : { url: replica.url }),
      });
  }
}
