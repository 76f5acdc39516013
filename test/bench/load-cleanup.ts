/** Stopping what the cluster benchmark started, whichever way it ends (Cleanup). */

export interface Stoppable {
  stop(): Promise<void>;
  stopNow(): void;
}

/**
 * Everything the benchmark started, stopped in reverse order on the way out:
 * normally, on an error, on Ctrl-C / SIGTERM, and (synchronously, as a last
 * resort) on process exit.
 */
export class Cleanup {
  private readonly items: Stoppable[] = [];
  private stopping: Promise<void> | null = null;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    // tsx relays the terminal's signal to this process, which also received it: act once.
    if (this.stopping !== null) return;
    process.stderr.write(`\n${signal}: stopping the processes the benchmark started and removing their data\n`);
    void this.stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  private readonly onExit = (): void => {
    for (const item of this.items.splice(0).reverse()) item.stopNow();
  };

  install(): void {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.onExit);
  }

  uninstall(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('exit', this.onExit);
  }

  add<T extends Stoppable>(item: T): T {
    this.items.push(item);
    return item;
  }

  async release(item: Stoppable): Promise<void> {
    const index = this.items.indexOf(item);
    if (index < 0) return;
    this.items.splice(index, 1);
    await item.stop();
  }

  stopAll(): Promise<void> {
    this.stopping ??= (async () => {
      for (const item of this.items.splice(0).reverse()) {
        try {
          await item.stop();
        } catch (error) {
          process.stderr.write(`cleanup: ${(error as Error).message}\n`);
        }
      }
    })();
    return this.stopping;
  }
}
