import { openDbCache } from './src/index.ts';
try { await openDbCache('/tmp/w12/a.db', { watch: false }); console.log('opened'); }
catch (e) { console.log('caught', e.code, e.message); }
setTimeout(() => console.log('still alive'), 500);
