import { Buffer } from 'node:buffer';
import * as fs from 'node:fs';

/**
 * The tightest floor of a full reload: the whole file in one asynchronous `fs.read` into a fresh
 * buffer, which is the I/O a dbcache full read does (fs.promises.readFile reads in 512 KiB steps,
 * one thread-pool round trip each). Files past 1 GiB take one call per GiB (`fs.read` takes less
 * than 2 GiB at a time).
 */
export async function readInOneCall(file: string): Promise<Buffer> {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const bytes = Buffer.allocUnsafeSlow(size);
    let done = 0;
    while (done < size) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.read(fd, bytes, done, Math.min(size - done, 2 ** 30), done, (error, read) => (error ? reject(error) : resolve(read))),
      );
      if (n === 0) break;
      done += n;
    }
    return done === size ? bytes : bytes.subarray(0, done);
  } finally {
    fs.closeSync(fd);
  }
}
