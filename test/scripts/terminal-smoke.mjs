// Runs in the consumer project under Deno in a pseudo-terminal, with exactly the README's flags:
// any permission dbcache (or what it loads) asks for beyond them would show up as a prompt.
import process from 'node:process';
import { openDbCache } from 'dbcache';

const sqlJs = process.argv[2] === 'inline' ? 'inline' : 'wasm';
const cache = await openDbCache('data/app.db', { sqlJs, persistent: true });
console.log(`open ${cache.generation} ${cache.get('SELECT count(*) AS n FROM t').n} ${cache.get('SELECT sqrt(16) AS r').r}`);
cache.subscribe(async (event) => {
  if (event.type !== 'reload') return;
  console.log(`watch ${event.generation} ${cache.get('SELECT count(*) AS n FROM t').n}`);
  await cache.close();
  console.log('closed');
});
