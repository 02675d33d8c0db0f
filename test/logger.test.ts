// tslog is used only by the command line's --verbose: the library never imports it by default, and
// where it cannot be found (a bundle left it out) --verbose says how to install it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createTsLogger, loadTsLog } from '../src/logger.ts';

describe('tslog, for --verbose only', () => {
  test('without tslog installed, loading it says how to install it; other failures pass through', async () => {
    const missing = Object.assign(new Error("Cannot find package 'tslog' imported from /app/node_modules/dbcache/dist/bin.js"), { code: 'ERR_MODULE_NOT_FOUND' });
    await assert.rejects(
      loadTsLog(() => Promise.reject(missing)),
      (error: unknown) => error instanceof Error && /npm install tslog/.test(error.message) && error.cause === missing,
    );
    const other = new SyntaxError('broken');
    await assert.rejects(loadTsLog(() => Promise.reject(other)), (error: unknown) => error === other);
  });

  test('with tslog installed, --verbose gets a tslog logger', async () => {
    const logger = await createTsLogger(6);
    for (const level of ['debug', 'info', 'warn', 'error'] as const) assert.equal(typeof logger[level], 'function');
  });
});
