import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

/**
 * `osls package` into a directory of its own, offline and without AWS credentials: what `npm run package`
 * does, made safe to run twice at once (tests): its own esbuild work folder, and any credential in the
 * environment hidden so that a variable needing AWS fails here rather than passing on a developer machine.
 */

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, "../..");
export const TEMPLATE_FILE = "cloudformation-template-update-stack.json";
export const FUNCTIONS = ["ingest-export", "sync-groups", "aggregate-groups", "aggregate-part"] as const;

export interface PackageOptions {
  stage?: string;
  region?: string;
  /** Stage params overrides, passed as `--param="name=value"`. */
  params?: Record<string, string>;
  timeoutMs?: number;
}

export interface PackagedService {
  dir: string;
  template: CfnTemplate;
  zip(fn: (typeof FUNCTIONS)[number]): string;
  remove(): Promise<void>;
}

export interface CfnTemplate {
  Conditions?: Record<string, unknown>;
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; [k: string]: unknown }>;
  Outputs?: Record<string, unknown>;
  [k: string]: unknown;
}

export async function packageService(outDir: string, opts: PackageOptions = {}): Promise<PackagedService> {
  const dir = resolve(outDir);
  const work = await mkdtemp(join(tmpdir(), "glr-esbuild-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // A relative work folder inside the service directory is what serverless-esbuild expects; a unique name.
    GLR_ESBUILD_WORK_FOLDER: `.esbuild-${work.split("glr-esbuild-")[1]}`,
    AWS_SHARED_CREDENTIALS_FILE: join(work, "no-credentials"),
    AWS_CONFIG_FILE: join(work, "no-config"),
    SLS_TELEMETRY_DISABLED: "1",
    SLS_NOTIFICATIONS_MODE: "off",
  };
  for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
    delete env[k];
  const args = [
    join(ROOT, "node_modules/osls/bin/serverless.js"),
    "package",
    "--stage",
    opts.stage ?? "ci",
    "--region",
    opts.region ?? "eu-west-1",
    "--package",
    dir,
    ...Object.entries(opts.params ?? {}).map(([k, v]) => `--param=${k}=${v}`),
  ];
  try {
    await run(process.execPath, args, {
      cwd: ROOT,
      env,
      timeout: opts.timeoutMs ?? 240_000,
      maxBuffer: 16 << 20,
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`osls package failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
  } finally {
    await rm(join(ROOT, env.GLR_ESBUILD_WORK_FOLDER ?? ".esbuild-none"), { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
  return loadPackaged(dir);
}

async function loadPackaged(dir: string): Promise<PackagedService> {
  const template = JSON.parse(await readFile(join(dir, TEMPLATE_FILE), "utf-8")) as CfnTemplate;
  return {
    dir,
    template,
    zip: (fn) => join(dir, `${fn}.zip`),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Hash of what the package is made of: the service definition, the dependencies and the code. */
async function inputsHash(opts: PackageOptions): Promise<string> {
  const h = createHash("sha256").update(JSON.stringify(opts));
  const files = ["serverless.yml", "package.json", "package-lock.json", "tsconfig.json"];
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await readdir(join(ROOT, rel), { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  await walk("functions");
  await walk("lib");
  for (const f of files) {
    h.update(`\0${f}\0`);
    h.update(await readFile(join(ROOT, f)).catch(() => Buffer.alloc(0)));
  }
  return h.digest("hex").slice(0, 16);
}

/**
 * One package for every test of a run (and of later runs while the inputs are unchanged): the first caller
 * packages into a temporary directory named after the inputs' hash, under a lock (an atomic mkdir);
 * the others wait for it. Never remove() a shared package.
 */
export async function sharedPackage(opts: PackageOptions, waitMs = 300_000): Promise<PackagedService> {
  const dir = join(tmpdir(), `glr-package-${await inputsHash(opts)}`);
  const complete = join(dir, ".complete");
  const lock = `${dir}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (existsSync(complete)) return loadPackaged(dir);
    try {
      await mkdir(lock);
    } catch {
      const held = await stat(lock).catch(() => null);
      if (held && Date.now() - held.mtimeMs > waitMs) await rm(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited ${waitMs} ms for another packaging run (${lock})`);
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      if (!existsSync(complete)) {
        await rm(dir, { recursive: true, force: true });
        await packageService(dir, opts);
        await writeFile(complete, "");
        await pruneOldPackages(dir);
      }
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
}

/** The options the tests package with (one shared package for the template test and the bundle smoke test). */
export const TEST_PACKAGE_OPTIONS: PackageOptions = {
  stage: "ci",
  params: {
    sftp: "true",
    sftpPublicKey:
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBs0m3Qw8y0kG0xQ5tC0d7n2c7aJ2m2Yc3cQm0Q6m5aZ insights",
    alarmEmail: "ops@example.com",
  },
};

/** Shared packages of other inputs, unused for an hour, are deleted. */
async function pruneOldPackages(keep: string): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    const p = join(tmpdir(), name);
    if (!name.startsWith("glr-package-") || name.endsWith(".lock") || p === keep) continue;
    const st = await stat(p).catch(() => null);
    if (st && Date.now() - st.mtimeMs > 3_600_000) await rm(p, { recursive: true, force: true });
  }
}

// CLI: `npx tsx infra/deploy/package.ts [outDir]` (npm run package writes to .serverless/ instead).
if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2] ?? join(ROOT, ".serverless");
  const p = await packageService(out);
  console.log(`packaged ${Object.keys(p.template.Resources).length} resources into ${p.dir}`);
}
