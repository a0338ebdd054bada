import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { S3Objects } from "./adapters/s3-objects.ts";
import { CsvParser } from "./domain/csv.ts";

/**
 * Group discovery from Member Care membership downloads dropped under `MEMBERSHIP_CSV_PREFIX` (default
 * `membership/`) of the exports bucket: CSV (optionally gzip), columns group id, user id, role, with
 * header variants ("Group Id", "group_id", "groupId", "User Group Id", "Fleet Group Id"; "User Id",
 * "fleetUserId", "Member Id", "Customer Id"; "Role"). Only the group id column is required: the file adds
 * group ids to a sync run; the memberships themselves always come from the API (the download is a
 * snapshot without history and without exits).
 *
 * Every object under the prefix is read (several regional downloads are unioned); delete a file to stop
 * discovering its groups. A row whose group id is not a number (null sentinels included) is counted as
 * rejected; a file without a recognisable group id column is skipped and counted. The prefix must not be
 * under `exports/` (ingestion would treat the file as an export).
 */

export interface MembershipCsvDiscovery {
  /** Distinct group ids, canonical (no leading zeros), in first-seen order. */
  groupIds: string[];
  files: number;
  /** Files without a group id column, or not parseable. */
  filesSkipped: number;
  rows: number;
  rowsRejected: number;
}

const GROUP_HEADERS = new Set(["groupid", "usergroupid", "fleetgroupid", "group", "usergroup2id"]);
const USER_HEADERS = new Set(["userid", "fleetuserid", "memberid", "customerid", "user"]);
const ROLE_HEADERS = new Set(["role", "memberrole", "grouprole"]);

const normHeader = (h: string) =>
  h
    .trim()
    .toLowerCase()
    .replace(/^.*\./, "") // Dimension.attribute forms
    .replace(/[^a-z0-9]/g, "");

export interface MembershipCsvColumns {
  group: number;
  user: number | null;
  role: number | null;
}

/** Column positions from a header row; null when no group id column is found. */
export function membershipCsvColumns(header: readonly string[]): MembershipCsvColumns | null {
  const norm = header.map(normHeader);
  const find = (names: Set<string>) => {
    const i = norm.findIndex((h) => names.has(h));
    return i < 0 ? null : i;
  };
  const group = find(GROUP_HEADERS);
  return group === null ? null : { group, user: find(USER_HEADERS), role: find(ROLE_HEADERS) };
}

/** A numeric group id in canonical form, or null (empty, null sentinels, -1, anything not digits). */
export function canonicalGroupId(raw: string | undefined): string | null {
  const t = (raw ?? "").trim();
  if (!/^\d+$/.test(t)) return null;
  const id = BigInt(t).toString();
  return id === "0" ? null : id;
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;

/** Reads one membership CSV (bytes, possibly gzip) and adds its group ids to `into`. */
export async function readMembershipCsv(
  body: AsyncIterable<Uint8Array>,
  into: Set<string>,
): Promise<{ ok: boolean; rows: number; rejected: number }> {
  let columns: MembershipCsvColumns | null | undefined;
  let rows = 0;
  let rejected = 0;
  const parser = new CsvParser(
    {
      record(fields) {
        if (columns === undefined) {
          columns = membershipCsvColumns(fields);
          return;
        }
        if (columns === null) return;
        rows++;
        const id = canonicalGroupId(fields[columns.group]);
        if (id === null) rejected++;
        else into.add(id);
      },
      error() {
        if (columns !== undefined) {
          rows++;
          rejected++;
        }
      },
    },
    { maxFieldBytes: 64 * 1024, maxRecordBytes: 1024 * 1024 },
  );
  for await (const chunk of await maybeGunzip(body)) {
    parser.push(chunk);
    if (columns === null) break; // no group id column: nothing to read
  }
  if (columns !== null) parser.end();
  return { ok: columns !== null && columns !== undefined, rows, rejected };
}

async function maybeGunzip(body: AsyncIterable<Uint8Array>): Promise<AsyncIterable<Uint8Array>> {
  const it = body[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return Readable.from([]);
  const head = first.value;
  const rest: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => {
      let sentHead = false;
      return {
        next: async () => {
          if (!sentHead) {
            sentHead = true;
            return { done: false, value: head };
          }
          return it.next();
        },
        return: async () => {
          await it.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
  if (head[0] !== GZIP_MAGIC[0] || head[1] !== GZIP_MAGIC[1]) return rest;
  return Readable.from(rest).pipe(createGunzip());
}

/** Group ids from every membership CSV under `prefix` of `bucket`. */
export async function discoverFromMembershipCsvs(
  objects: S3Objects,
  bucket: string,
  prefix: string,
): Promise<MembershipCsvDiscovery> {
  const ids = new Set<string>();
  const out: MembershipCsvDiscovery = { groupIds: [], files: 0, filesSkipped: 0, rows: 0, rowsRejected: 0 };
  for await (const o of objects.list(bucket, prefix)) {
    if (o.key.endsWith("/") || o.size === 0) continue;
    out.files++;
    const obj = await objects.get(bucket, o.key);
    try {
      const r = await readMembershipCsv(obj.body, ids);
      out.rows += r.rows;
      out.rowsRejected += r.rejected;
      if (!r.ok) out.filesSkipped++;
    } catch {
      out.filesSkipped++; // e.g. a corrupt gzip: skip the file, keep the others
    } finally {
      obj.destroy();
    }
  }
  out.groupIds = [...ids];
  return out;
}
