import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
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
export const FUNCTIONS = ["ingest-export", "sync-groups", "aggregate-groups"] as const;

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
  const template = JSON.parse(await readFile(join(dir, TEMPLATE_FILE), "utf-8")) as CfnTemplate;
  return {
    dir,
    template,
    zip: (fn) => join(dir, `${fn}.zip`),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

// CLI: `npx tsx infra/deploy/package.ts [outDir]` (npm run package writes to .serverless/ instead).
if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2] ?? join(ROOT, ".serverless");
  const p = await packageService(out);
  console.log(`packaged ${Object.keys(p.template.Resources).length} resources into ${p.dir}`);
}
