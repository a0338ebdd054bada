import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, stat } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/**
 * DynamoDB Local for the local stack. The jar is taken from the npm tarball of amplify-dynamodb-simulator
 * (which bundles the official DynamoDBLocal.jar), so no AWS download site is needed: only the npm registry.
 * Only `emulator/DynamoDBLocal.jar` and `emulator/DynamoDBLocal_lib/` are kept (~64 MB on disk).
 */

const SIMULATOR_PACKAGE = "amplify-dynamodb-simulator@2.9.30";
const JAR = "DynamoDBLocal.jar";
const LIB = "DynamoDBLocal_lib";
const STAGING_PREFIX = ".staging-";
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** C1 only + serial GC: about 40% faster start-up, plenty fast for a local emulator. */
const DEFAULT_JVM_OPTS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"];
const JAVA_INSTALL_HINT =
  "DynamoDB Local needs Java 17 or newer on PATH (or JAVA_HOME). On Debian/Ubuntu: " +
  "`sudo apt-get install -y openjdk-17-jre-headless`; elsewhere install any Java 17+ runtime " +
  "(e.g. Eclipse Temurin) and make `java -version` work.";

const execFileAsync = promisify(execFile);

export type DynamoDbLocalErrorCode =
  | "DDB_LOCAL_JAVA_MISSING"
  | "DDB_LOCAL_JAVA_TOO_OLD"
  | "DDB_LOCAL_FETCH_FAILED"
  | "DDB_LOCAL_EXITED"
  | "DDB_LOCAL_START_TIMEOUT";

export class DynamoDbLocalError extends Error {
  readonly code: DynamoDbLocalErrorCode;
  constructor(code: DynamoDbLocalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DynamoDbLocalError";
    this.code = code;
  }
}

function errnoCode(e: unknown): string | undefined {
  if (e instanceof Error && "code" in e && typeof e.code === "string") return e.code;
  return undefined;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------------------
// Install (fetch the jar once)
// ---------------------------------------------------------------------------------------------------------

function isInstalled(dir: string): boolean {
  // The jar is moved into place last, so its presence implies a complete DynamoDBLocal_lib.
  return existsSync(join(dir, JAR)) && existsSync(join(dir, LIB));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}

/** Staging dirs are named `.staging-<pid>-<random>`; remove those left by processes that died mid-install. */
async function removeStaleStaging(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const pid = Number(name.slice(STAGING_PREFIX.length).split("-")[0]);
    if (Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) {
      await rm(join(dir, name), { recursive: true, force: true });
    }
  }
}

async function moveIntoPlace(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    // Another process won the race for this entry (a non-empty directory cannot be replaced): keep theirs.
    const code = errnoCode(e);
    if ((code === "ENOTEMPTY" || code === "EEXIST") && existsSync(to)) return;
    throw e;
  }
}

/**
 * Makes sure `<dir>/DynamoDBLocal.jar` and `<dir>/DynamoDBLocal_lib/` exist and returns the absolute dir.
 * A relative `dir` is resolved against the project root (not the cwd). First run: `npm pack` of the
 * simulator package (~57 MB) and a selective `tar` extraction, ~3 s. Idempotent; concurrent callers each
 * stage into a private directory and move the result into place with rename(2), so a reader never sees a
 * half-extracted install.
 */
export async function ensureDynamoDbLocal(dir = ".ddb-local"): Promise<string> {
  const target = resolve(PROJECT_ROOT, dir);
  if (isInstalled(target)) return target;
  await mkdir(target, { recursive: true });
  await removeStaleStaging(target);
  const staging = await mkdtemp(join(target, `${STAGING_PREFIX}${process.pid}-`));
  try {
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    try {
      await execFileAsync(npm, ["pack", SIMULATOR_PACKAGE, "--pack-destination", staging, "--silent"], {
        cwd: staging,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (e) {
      throw new DynamoDbLocalError(
        "DDB_LOCAL_FETCH_FAILED",
        `could not fetch ${SIMULATOR_PACKAGE} with npm pack (is the npm registry reachable?): ${message(e)}`,
        { cause: e },
      );
    }
    const tarball = (await readdir(staging)).find((f) => f.endsWith(".tgz"));
    if (tarball === undefined) {
      throw new DynamoDbLocalError("DDB_LOCAL_FETCH_FAILED", `npm pack left no tarball in ${staging}`);
    }
    const out = join(staging, "out");
    await mkdir(out);
    try {
      await execFileAsync("tar", [
        "-xzf",
        join(staging, tarball),
        "-C",
        out,
        "--strip-components=2",
        `package/emulator/${JAR}`,
        `package/emulator/${LIB}`,
      ]);
    } catch (e) {
      throw new DynamoDbLocalError("DDB_LOCAL_FETCH_FAILED", `could not extract ${tarball}: ${message(e)}`, {
        cause: e,
      });
    }
    if ((await stat(join(out, JAR))).size === 0 || !existsSync(join(out, LIB))) {
      throw new DynamoDbLocalError("DDB_LOCAL_FETCH_FAILED", `${tarball} has no emulator/${JAR}`);
    }
    await moveIntoPlace(join(out, LIB), join(target, LIB));
    await moveIntoPlace(join(out, JAR), join(target, JAR));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return target;
}

// ---------------------------------------------------------------------------------------------------------
// Java
// ---------------------------------------------------------------------------------------------------------

function javaBinary(): string {
  const home = process.env.JAVA_HOME;
  if (home) {
    const bin = join(home, "bin", process.platform === "win32" ? "java.exe" : "java");
    if (existsSync(bin)) return bin;
  }
  return "java";
}

let javaChecked: Promise<string> | undefined;

/** Resolves to the java binary after checking it runs and is Java 17+ (checked once per process). */
export function checkJava(): Promise<string> {
  javaChecked ??= (async () => {
    const bin = javaBinary();
    let output: string;
    try {
      const r = await execFileAsync(bin, ["-version"]);
      output = `${r.stderr}${r.stdout}`;
    } catch (e) {
      javaChecked = undefined;
      throw new DynamoDbLocalError("DDB_LOCAL_JAVA_MISSING", `cannot run \`${bin}\`. ${JAVA_INSTALL_HINT}`, {
        cause: e,
      });
    }
    const m = /version "(\d+)(?:\.(\d+))?/.exec(output);
    const major = m?.[1] === "1" ? Number(m[2]) : Number(m?.[1]);
    if (Number.isFinite(major) && major < 17) {
      javaChecked = undefined;
      throw new DynamoDbLocalError(
        "DDB_LOCAL_JAVA_TOO_OLD",
        `\`${bin}\` is Java ${major}; ${JAVA_INSTALL_HINT}`,
      );
    }
    return bin;
  })();
  return javaChecked;
}

// ---------------------------------------------------------------------------------------------------------
// Process lifetime: never leave java behind
// ---------------------------------------------------------------------------------------------------------

/**
 * On POSIX java runs under a tiny `sh` watchdog in its own process group: the watchdog kills java as soon as
 * its stdin (a pipe from this process) reaches EOF, which happens when we stop it and also when this process
 * dies in any way, SIGKILL included. On top of that, 'exit', SIGINT and SIGTERM kill the whole group.
 */
const WATCHDOG = [
  'java="$1"; shift',
  "exec 3<&0 </dev/null",
  '"$java" "$@" 3<&- &',
  "j=$!",
  "{ cat <&3 >/dev/null; kill $j 2>/dev/null; } &",
  "wait $j",
].join("\n");

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (process.platform === "win32") child.kill(signal);
    else process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function killAll(): void {
  for (const child of live) killGroup(child, "SIGKILL");
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  killAll();
  // We only wanted to clean up: if nobody else handles the signal, restore the default (terminate).
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAll);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

// ---------------------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------------------

export interface DynamoDbLocal {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  /** Pid of the spawned process; on POSIX also its process group id (the group holds java). */
  pid: number;
  stop(): Promise<void>;
}

export interface StartDynamoDbLocalOptions {
  /** Install dir, see ensureDynamoDbLocal. */
  dir?: string;
  /** Default: a free port chosen by the OS. */
  port?: number;
  /** Default 60 s (a cold JVM on a small machine takes 2-7 s). */
  timeoutMs?: number;
  /** Extra JVM options; default `-XX:TieredStopAtLevel=1 -XX:+UseSerialGC` (faster start-up). */
  jvmOptions?: string[];
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? ok(port) : fail(new Error("no port assigned"))));
    });
  });
}

/** One ListTables call; resolves true on HTTP 200. Any credentials parse: the signature is not verified. */
function listTablesAnswers(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const body = "{}";
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/",
        timeout: 2000,
        headers: {
          "content-type": "application/x-amz-json-1.0",
          "x-amz-target": "DynamoDB_20120810.ListTables",
          authorization:
            "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => ok(res.statusCode === 200));
        res.on("error", () => ok(false));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => ok(false));
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class OutputTail {
  private text = "";
  append(chunk: Buffer): void {
    this.text = (this.text + chunk.toString("utf8")).slice(-8000);
  }
  toString(): string {
    return this.text.trim() || "(no output)";
  }
}

function spawnJava(java: string, jarDir: string, args: string[]): ChildProcess {
  const opts = { cwd: jarDir, stdio: "pipe" as const, windowsHide: true };
  if (process.platform === "win32") return spawn(java, args, opts);
  return spawn("/bin/sh", ["-c", WATCHDOG, "ddb-local-watchdog", java, ...args], { ...opts, detached: true });
}

interface Attempt {
  child: ChildProcess;
  exited: Promise<void>;
  output: OutputTail;
}

function launch(java: string, jarDir: string, port: number, jvmOptions: string[]): Attempt {
  const args = [
    ...jvmOptions,
    `-Djava.library.path=./${LIB}`,
    "-jar",
    JAR,
    "-inMemory",
    "-disableTelemetry",
    // One database for all credentials and regions: the AWS CLI with any profile sees the same tables.
    "-sharedDb",
    "-port",
    String(port),
  ];
  installHooks();
  const child = spawnJava(java, jarDir, args);
  live.add(child);
  const output = new OutputTail();
  child.stdout?.on("data", (c: Buffer) => output.append(c));
  child.stderr?.on("data", (c: Buffer) => output.append(c));
  // Do not keep the event loop alive for the emulator alone; the watchdog kills it when we exit.
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) {
    if (s && "unref" in s && typeof s.unref === "function") s.unref();
  }
  child.stdin?.on("error", () => {});
  const exited = new Promise<void>((r) => {
    child.once("exit", () => {
      live.delete(child);
      child.stdin?.destroy();
      r();
    });
    child.once("error", (e) => {
      output.append(Buffer.from(`spawn failed: ${e.message}`));
      live.delete(child);
      r();
    });
  });
  return { child, exited, output };
}

async function stopAttempt(a: Attempt): Promise<void> {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return;
  if (process.platform === "win32") a.child.kill("SIGTERM");
  else a.child.stdin?.end(); // the watchdog sends SIGTERM to java
  const timer = setTimeout(() => killGroup(a.child, "SIGKILL"), 5000);
  await a.exited;
  clearTimeout(timer);
  // Java is gone; make sure nothing of the group (the watchdog's `cat`) lingers either.
  killGroup(a.child, "SIGKILL");
}

/** Waits until ListTables answers; resolves false if the process exits first. */
async function waitReady(a: Attempt, port: number, deadline: number): Promise<boolean> {
  let exited = false;
  void a.exited.then(() => {
    exited = true;
  });
  while (Date.now() < deadline) {
    if (exited) return false;
    if (await listTablesAnswers(port)) return !exited;
    await sleep(50);
  }
  return !exited && (await listTablesAnswers(port));
}

/**
 * Runs `java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -disableTelemetry
 * -sharedDb -port N` in the jar dir and resolves once ListTables answers. DynamoDB Local has no bind-address
 * option, so it listens on all interfaces; the endpoint uses 127.0.0.1.
 */
export async function startDynamoDbLocal(opts: StartDynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const jarDir = await ensureDynamoDbLocal(opts.dir);
  // No `java -version` up front (it would delay the JVM start): diagnose with checkJava() if java fails.
  const java = javaBinary();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const jvmOptions = opts.jvmOptions ?? DEFAULT_JVM_OPTS;
  // A port picked by the OS can be taken by someone else before java binds it: retry with another.
  const attempts = opts.port === undefined ? 3 : 1;
  let last: { output: OutputTail; code: number | null } | undefined;
  for (let i = 0; i < attempts; i++) {
    const port = opts.port ?? (await freePort());
    const attempt = launch(java, jarDir, port, jvmOptions);
    const ready = await waitReady(attempt, port, deadline);
    if (ready) {
      const pid = attempt.child.pid ?? -1;
      let stopping: Promise<void> | undefined;
      return {
        endpoint: `http://127.0.0.1:${port}`,
        port,
        pid,
        stop: () => {
          stopping ??= stopAttempt(attempt);
          return stopping;
        },
      };
    }
    const exitedEarly = attempt.child.exitCode !== null || attempt.child.signalCode !== null;
    await stopAttempt(attempt);
    last = { output: attempt.output, code: attempt.child.exitCode };
    if (!exitedEarly) {
      throw new DynamoDbLocalError(
        "DDB_LOCAL_START_TIMEOUT",
        `DynamoDB Local did not answer ListTables on port ${port} within ${timeoutMs} ms. Its output:\n${attempt.output}`,
      );
    }
    if (!/BindException|Address already in use/i.test(attempt.output.toString())) break;
  }
  await checkJava(); // throws DDB_LOCAL_JAVA_MISSING / DDB_LOCAL_JAVA_TOO_OLD with install instructions
  throw new DynamoDbLocalError(
    "DDB_LOCAL_EXITED",
    `DynamoDB Local exited during start-up (code ${last?.code ?? "?"}). Its output:\n${last?.output ?? ""}`,
  );
}
