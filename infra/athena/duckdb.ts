/**
 * Runs the Athena SQL of this folder on DuckDB over a local copy of S3 (tests, local checks). The one
 * substitution: DuckDB has no CREATE EXTERNAL TABLE, so each statement of tables.sql becomes a view over
 * read_csv at the local copy of its LOCATION (EXPORTS_BUCKET and SNAPSHOT_ROOT both map to `root`), with
 * the same columns, the Hive partition columns, and the object's path as "$path" (Athena's pseudo
 * column). group_summary.sql runs unchanged.
 */
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";

export const ATHENA_DIR = dirname(fileURLToPath(import.meta.url));

export interface AthenaTable {
  name: string;
  columns: string[];
  partitioned: boolean;
  location: string;
}

/** The CREATE EXTERNAL TABLE statements of tables.sql: name, columns, partitioning, location. */
export function parseTables(ddl: string): AthenaTable[] {
  const text = ddl.replace(/--[^\n]*/g, "");
  const out: AthenaTable[] = [];
  const re =
    /CREATE EXTERNAL TABLE IF NOT EXISTS (\w+) \(([^)]*)\)\s*(PARTITIONED BY \([^)]*\))?[\s\S]*?LOCATION '([^']+)'/g;
  for (const m of text.matchAll(re)) {
    out.push({
      name: m[1] ?? "",
      columns: (m[2] ?? "")
        .split(",")
        .map((c) => c.trim().split(/\s+/)[0] ?? "")
        .filter((c) => c !== ""),
      partitioned: m[3] !== undefined,
      location: m[4] ?? "",
    });
  }
  return out;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

function localGlob(t: AthenaTable, root: string): string {
  const rel = t.location.replace(/^s3:\/\/EXPORTS_BUCKET\//, "").replace(/^SNAPSHOT_ROOT\//, "");
  return join(root, rel, t.partitioned ? "**/*.csv.gz" : "*.csv");
}

/** The DuckDB view standing in for one Athena table (an empty one when no object exists). */
export function duckView(t: AthenaTable, root: string, hasFiles: boolean): string {
  const names = [...t.columns, ...(t.partitioned ? ["period", "part", "$path"] : [])];
  if (!hasFiles) {
    const nulls = names.map((c) => `CAST(NULL AS VARCHAR) AS "${c}"`);
    return `CREATE VIEW ${t.name} AS SELECT ${nulls.join(", ")} WHERE false`;
  }
  const cols = [...t.columns.map((c) => `"${c}"`), ...(t.partitioned ? ['"period"', '"part"'] : [])];
  if (t.partitioned) cols.push('filename AS "$path"');
  const opts = t.partitioned
    ? "header = true, all_varchar = true, hive_partitioning = true, hive_types_autocast = false, filename = true"
    : "header = true, all_varchar = true";
  return `CREATE VIEW ${t.name} AS SELECT ${cols.join(", ")} FROM read_csv(${sqlString(localGlob(t, root))}, ${opts})`;
}

async function createViews(con: DuckDBConnection, root: string): Promise<void> {
  const tables = parseTables(await readFile(join(ATHENA_DIR, "tables.sql"), "utf8"));
  for (const t of tables) {
    const probe = await con.runAndReadAll(`SELECT count(*) AS n FROM glob(${sqlString(localGlob(t, root))})`);
    const hasFiles = Number(probe.getRowObjectsJS()[0]?.n ?? 0) > 0;
    await con.run(duckView(t, root, hasFiles));
  }
}

/** group_summary.sql on DuckDB (one thread) over the local copy `root`: rows of text cells. */
export async function runGroupSummaryOnDuckDb(root: string): Promise<Record<string, string>[]> {
  const query = await readFile(join(ATHENA_DIR, "group_summary.sql"), "utf8");
  const instance = await DuckDBInstance.create(":memory:");
  const con = await instance.connect();
  try {
    await con.run("SET threads = 1");
    await createViews(con, root);
    const rows = (await con.runAndReadAll(query.replace(/;\s*$/, ""))).getRowObjectsJS();
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)])));
  } finally {
    con.closeSync();
    instance.closeSync();
  }
}
