// Runs the dbcache command line as bin.ts does (real stdout, with its backpressure), then writes
// this process's peak resident memory (VmHWM from /proc/self/status, in KiB) to the file named
// by the first argument. Usage: cli-peak.ts <side-file> <dbcache arguments…>
import { readFileSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { runProcess } from '../../src/cli.ts';

const [sideFile, ...args] = process.argv.slice(2);
const code = await runProcess(args);
const peak = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
writeFileSync(sideFile!, `${peak ?? ''}\n`);
process.exitCode = code;
