// Where the vendor's real sample events are read from: `../shared/samples` beside the checkout when it exists
// (the issue names it; samples may be added there), else the copy committed in fixtures/samples.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const shared = join(root, '..', 'shared', 'samples');

export const SAMPLES_DIR = existsSync(join(shared, 'ram-user-sdk-call.json')) ? shared : join(root, 'fixtures', 'samples');
