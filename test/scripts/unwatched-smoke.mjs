// Runs in the consumer project under Deno in a pseudo-terminal with the README's read flags and no
// --allow-env: with watch: false, nothing may read the environment (Deno would ask).
import { openDbCache } from 'dbcache';

const cache = await openDbCache('data/app.db', { watch: false });
await cache.reload();
console.log(`open ${cache.generation} ${cache.get('SELECT count(*) AS n FROM t').n}`);
await cache.close();
console.log('closed');
