import process from 'node:process';
import { runProcess } from './cli.ts';

process.exitCode = await runProcess(process.argv.slice(2));
