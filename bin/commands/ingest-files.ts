// `keyfence ingest PATHS…`: files, directories and globs into one database file, with progress on stderr.
import { ingestFiles } from '../../ingest/file-ingest.ts';
import { Store } from '../../ingest/store.ts';
import { UsageError } from '../../model/errors.ts';
import { Progress, resolveDbPaths } from '../common.ts';
import { printIngestSummary } from './ingest.ts';

export async function ingestPaths(paths: string[], dbFlag: string[] | undefined, json: boolean): Promise<number> {
  const store = await Store.open(singleDb(dbFlag));
  const progress = new Progress('ingest');
  try {
    const summary = await ingestFiles(store, paths, {
      onProgress: (done, total) => progress.update(done, total, `${formatBytes(done)} of ${formatBytes(total)}`),
    });
    progress.done();
    return printIngestSummary(summary, json);
  } finally {
    progress.done();
    store.close();
  }
}

function singleDb(flag: string[] | undefined): string {
  const paths = resolveDbPaths(flag);
  if (paths.length !== 1) throw new UsageError('ingest writes one database file', { hint: 'pass a single --db FILE' });
  return paths[0]!;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}
