/**
 * npx tsx infra/sample/cli.ts --out DIR [--seed N] [--months 2026-10,2026-11] [--scale N] [--groups N] [--now ISO]
 * Writes the sample exports, membership snapshots, truth.json and manifest.json into DIR.
 */
import { parseArgs } from "node:util";
import { monthEndMs } from "./dates.ts";
import { generateSample } from "./generate.ts";

function numberOpt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      seed: { type: "string" },
      months: { type: "string" },
      scale: { type: "string" },
      groups: { type: "string" },
      now: { type: "string" },
    },
  });
  if (!values.out) {
    console.error(
      "usage: tsx infra/sample/cli.ts --out DIR [--seed N] [--months YYYY-MM,YYYY-MM] [--scale N] [--groups N] [--now ISO]",
    );
    process.exit(2);
  }
  const started = Date.now();
  const now = values.now ? new Date(values.now) : undefined;
  if (now && Number.isNaN(now.getTime())) throw new Error(`--now is not a date: ${values.now}`);
  const manifest = await generateSample({
    outDir: values.out,
    seed: numberOpt("seed", values.seed),
    months: values.months?.split(",").map((m) => m.trim()),
    scale: numberOpt("scale", values.scale),
    groups: numberOpt("groups", values.groups),
    now,
  });
  const out = (s: string): void => {
    process.stdout.write(`${s}\n`);
  };
  out(
    `sample in ${values.out} (seed ${manifest.seed}, months ${manifest.months.join(", ")}, scale ${manifest.scale})`,
  );
  for (const f of manifest.files) {
    out(
      `  ${f.deliveryOrder}  ${f.deliveredAt}  ${f.template.padEnd(25)} ${String(f.rows).padStart(8)} rows  ${f.packaging.padEnd(4)} ${f.key}`,
    );
  }
  out(
    `  membership: ${manifest.membership.initial}, ${manifest.membership.current} (${manifest.groupIds.length} groups, ${manifest.userCount} users)`,
  );
  out(
    `  truth: ${manifest.truth}; manifest: manifest.json; ${manifest.badRows.length} bad rows; ${Object.keys(manifest.cases).length} cases`,
  );
  out(`  done in ${Date.now() - started} ms`);
  const last = manifest.months[manifest.months.length - 1] as string;
  if (monthEndMs(last) > Date.now()) {
    out(
      `  warning: ${last} has not ended yet; the truth assumes both syncs run after it (at ${manifest.now})`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
