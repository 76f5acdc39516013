/** pino, as JSON lines for machines or pretty for people; every line names the node. */
import { pino } from 'pino';
import type { Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat, LogLevel } from '../config/config.ts';

export function createLogger(level: LogLevel, format: LogFormat, base: Record<string, string>): Logger {
  const options = { level, base, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'json') return pino(options, pino.destination({ fd: 1, sync: false }));
  return pino(options, pretty({ colorize: process.stdout.isTTY, sync: true, singleLine: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
}
