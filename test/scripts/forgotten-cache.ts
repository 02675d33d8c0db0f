// Opens a watching cache and never closes it: the process must still exit by itself.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDbCache } from '../../src/index.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbcache-exit-'));
const file = path.join(dir, 'app.db');
fs.writeFileSync(file, '');
const cache = await openDbCache(file, { poll: process.argv.includes('--poll') });
cache.snapshot();
// The directory stays while the process winds down (its deletion would end the watch by itself);
// the test removes it.
console.log(`open generation ${cache.generation} in ${dir}`);
