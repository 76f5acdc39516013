/**
 * CPU time of a process from /proc/PID/stat (Linux): user + system time of
 * all its threads, so a node's libuv and V8 helper threads count too.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** utime and stime, in clock ticks, from the text of /proc/PID/stat. */
export function parseProcStat(text: string): { utimeTicks: number; stimeTicks: number } {
  // Field 2 is the command name in parentheses and may itself hold spaces or ')': split after the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/PID/stat line');
  const fields = text.slice(close + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are at 11 and 12.
  const utimeTicks = Number(fields[11]);
  const stimeTicks = Number(fields[12]);
  if (!Number.isFinite(utimeTicks) || !Number.isFinite(stimeTicks)) throw new Error('not a /proc/PID/stat line');
  return { utimeTicks, stimeTicks };
}

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of /proc times (100 on every common Linux build; asked once to be sure). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU seconds a process has used so far, or null when it cannot be read (exited, not Linux). */
export function cpuSeconds(pid: number): number | null {
  try {
    const { utimeTicks, stimeTicks } = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (utimeTicks + stimeTicks) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

/** A process's CPU use between two readings, as a percentage of one core. */
export function percentOfCore(before: number | null, after: number | null, elapsedMs: number): number | null {
  if (before === null || after === null || elapsedMs <= 0) return null;
  return ((after - before) * 1000 * 100) / elapsedMs;
}

/** Busy (not idle, not waiting for I/O) time of all CPUs, in clock ticks, from the text of /proc/stat. */
export function parseMachineBusyTicks(text: string): number {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('no cpu line in /proc/stat');
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already inside user.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  return user + nice + system + irq + softirq + steal;
}

/** CPU seconds the whole machine has been busy so far, or null off Linux. */
export function machineBusySeconds(): number | null {
  try {
    return parseMachineBusyTicks(readFileSync('/proc/stat', 'utf8')) / clockTicksPerSecond();
  } catch {
    return null;
  }
}
