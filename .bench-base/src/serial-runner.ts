/**
 * Runs an async task one at a time and coalesces callers: a call while the task runs shares the
 * next run, which starts after the current one ends. So every caller's run starts after its call
 * (it sees everything that happened before the call), and at most one run waits.
 */
export class SerialRunner<T> {
  #task: () => Promise<T>;
  #running: Promise<T> | undefined;
  #queued: Promise<T> | undefined;

  constructor(task: () => Promise<T>) {
    this.#task = task;
  }

  /** The run in progress, if any. */
  get running(): Promise<T> | undefined {
    return this.#queued ?? this.#running;
  }

  run(): Promise<T> {
    if (this.#running === undefined) return this.#start();
    this.#queued ??= this.#running.then(
      () => this.#startQueued(),
      () => this.#startQueued(),
    );
    return this.#queued;
  }

  #startQueued(): Promise<T> {
    this.#queued = undefined;
    return this.#start();
  }

  #start(): Promise<T> {
    const run = this.#task();
    this.#running = run;
    const clear = (): void => {
      if (this.#running === run) this.#running = undefined;
    };
    run.then(clear, clear);
    return run;
  }
}
