import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { SimCredentials, SimGroup, SimMember, SimState } from "./sample/membership-types.ts";

/**
 * A Capillary user-group API (v2 "userGroup2") simulator on node:http, for dev, demo and integration tests.
 * Shapes follow shared/domain/CAPILLARY.md. Ids (group, user, program) and decimals are written into the
 * JSON text verbatim as JSON numbers, so ids beyond 2^53 reach the client exactly as a real server sends them.
 *
 * Simulator choices (the docs are silent; each is an ASSUMPTION, configurable where it matters):
 * - ASSUMPTION: `/members` lists every membership of the group, exited ones included (its `inActive` flag
 *   would be pointless otherwise); `membersIncludeExited: false` lists only active members. `total` counts
 *   the rows that the listing returns. Rows come in the order of `SimGroup.members`.
 * - `inActive` is documented inverted: the simulator sends `inActive: true` for an ACTIVE member.
 * - Warning 1656 is attached to some valid groups: by default those whose id ends in 7 (`warning1656`).
 * - An unknown id/externalId answers HTTP 400 with error 1632, on every group endpoint.
 * - Auth failures answer HTTP 401 with the error body (code 401). Tokens live `tokenTtlSeconds` (3600).
 * - `limit` defaults to 10 and is capped at 1000; `offset` defaults to 0.
 */

export type QueryPredicate = (query: URLSearchParams) => boolean;

export type Fault =
  /** Answer `times` (default 1) matching requests with `status`, an optional Retry-After and a body. */
  | {
      kind: "status";
      path: string;
      status: number;
      times?: number;
      query?: QueryPredicate;
      retryAfter?: string;
      /** A string is sent as is; anything else as JSON. Default: the Capillary error body. */
      body?: unknown;
    }
  /** Hold `times` matching requests for `ms` before answering normally (to cause client timeouts). */
  | { kind: "delay"; path: string; ms: number; times?: number; query?: QueryPredicate }
  /**
   * After answering `times` matching requests normally, call `mutate` on the live state (e.g. insert a
   * member between page 1 and page 2 of /members). The simulator re-indexes the state afterwards.
   */
  | {
      kind: "mutate";
      path: string;
      times?: number;
      query?: QueryPredicate;
      mutate: (state: SimState) => void;
    };

export interface RequestLogEntry {
  /** Arrival time, ms epoch. */
  at: number;
  method: string;
  path: string;
  /** Query parameters (ids, paging, search terms); never credentials. */
  query: Record<string, string>;
  /** 0 while a delayed request is still held. */
  status: number;
  auth: "oauth" | "basic" | "none" | "invalid";
  fault: Fault["kind"] | null;
}

export interface CapillarySimulator {
  url: string;
  /** Replace the state (also call it after mutating the state object in place: it re-indexes). */
  setState(s: SimState): void;
  inject(fault: Fault): void;
  /** Every token issued so far becomes expired (the next request with it gets 401). */
  expireTokens(): void;
  requests(): RequestLogEntry[];
  stop(): Promise<void>;
}

export interface SimulatorOptions {
  state: SimState;
  credentials: SimCredentials;
  port?: number;
  tokenTtlSeconds?: number;
  /** See the ASSUMPTION above; default true. */
  membersIncludeExited?: boolean;
  /** Which valid groups carry warning 1656; default: id ends in 7. */
  warning1656?: (g: SimGroup) => boolean;
}

const MAX_LOG = 200_000;
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;

// ---------- JSON text with verbatim numbers ----------

/** A JSON number written exactly as its decimal text (never through a JS number). */
class Num {
  constructor(readonly text: string) {}
}
type Json = null | boolean | number | string | Num | Json[] | { [k: string]: Json };

const NUMBER_TEXT = /^-?(0|[1-9]\d*)(\.\d+)?$/;

function num(text: string): Num {
  // Leading zeros are not valid JSON numbers; ids with leading zeros would have to be strings.
  const t = /^-?0\d/.test(text) ? text.replace(/^(-?)0+(?=\d)/, "$1") : text;
  if (!NUMBER_TEXT.test(t))
    throw new Error(`simulator state holds a non-numeric value where a number is sent`);
  return new Num(t);
}

function toJson(v: Json): string {
  if (v instanceof Num) return v.text;
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(toJson).join(",")}]`;
  const parts: string[] = [];
  for (const [k, x] of Object.entries(v)) parts.push(`${JSON.stringify(k)}:${toJson(x)}`);
  return `{${parts.join(",")}}`;
}

function errorBody(code: number, message: string): string {
  return toJson({ warnings: [], errors: [{ status: false, code, message }] });
}

// ---------- state index and cached JSON fragments ----------

interface GroupIndex {
  byId: Map<string, SimGroup>;
  byExternalId: Map<string, SimGroup>;
  lowerNames: { group: SimGroup; lower: string }[];
  groupJson: Map<string, string>;
  memberRows: Map<string, string[]>;
}

function indexState(state: SimState): GroupIndex {
  const byId = new Map<string, SimGroup>();
  const byExternalId = new Map<string, SimGroup>();
  const lowerNames: GroupIndex["lowerNames"] = [];
  for (const g of state.groups) {
    byId.set(canonicalId(g.id), g);
    if (g.externalId !== null) byExternalId.set(g.externalId, g);
    lowerNames.push({ group: g, lower: g.groupName.toLowerCase() });
  }
  return { byId, byExternalId, lowerNames, groupJson: new Map(), memberRows: new Map() };
}

/** "007" and "7" name the same numeric id. */
function canonicalId(id: string): string {
  return id.replace(/^0+(?=\d)/, "");
}

function primaryMemberId(g: SimGroup): Num | null {
  const p = g.members.find((m) => m.primaryMember && m.active);
  return p ? num(p.userId) : null;
}

/** Without `programDetails=true`, `pointsSummaries` is empty. */
function groupJson(g: SimGroup, warn: boolean, programDetails: boolean): string {
  const active = g.members.filter((m) => m.active).length;
  return toJson({
    id: num(g.id),
    externalId: g.externalId,
    groupName: g.groupName,
    groupStatus: g.groupStatus,
    maxGroupSize: g.maxGroupSize,
    createdOn: g.createdOn,
    lifeTimePurchases: num(g.lifeTimePurchases),
    totalActiveMembers: active,
    totalExitedMembers: g.members.length - active,
    fleetGroupUsers: g.members.map((m) => ({
      userId: num(m.userId),
      groupId: num(g.id),
      primaryMember: m.primaryMember,
      defaultGroup: m.defaultGroup,
      active: m.active,
    })),
    pointsSummaries: (programDetails ? g.programs : []).map((p) => ({
      programId: num(p.programId),
      programTitle: p.programTitle,
      loyaltyPoints: num(p.loyaltyPoints),
      lifetimePoints: num(p.lifetimePoints),
      redeemed: num(p.redeemed),
      expired: num(p.expired),
      currentSlab: p.currentSlab,
      slabSNo: p.slabSNo,
    })),
    extendedFields: g.extendedFields,
    warnings: warn ? [{ status: true, code: 1656, message: "group has pending updates" }] : [],
  });
}

function memberRow(m: SimMember): string {
  return toJson({
    fleetUserId: num(m.userId),
    joinedOn: m.joinedOn,
    role: m.role,
    permissions: m.permissions.join(","),
    pointsContributed: num(m.pointsContributed),
    primaryMember: m.primaryMember,
    // Documented inverted: true means the member is active.
    inActive: m.active,
  });
}

function searchRow(g: SimGroup): string {
  return toJson({
    groupId: num(g.id),
    groupName: g.groupName,
    groupStatus: g.groupStatus,
    groupExternalId: g.externalId,
    primaryMemberId: primaryMemberId(g),
    totalMembers: g.members.filter((m) => m.active).length,
  });
}

function paged(rows: string[], q: URLSearchParams, withPagination: boolean): string {
  const limit = Math.min(MAX_LIMIT, intParam(q.get("limit"), DEFAULT_LIMIT, 1));
  const offset = intParam(q.get("offset"), 0, 0);
  const data = `[${rows.slice(offset, offset + limit).join(",")}]`;
  const pagination = `{"limit":${limit},"offset":${offset},"total":${rows.length}}`;
  return withPagination ? `{"pagination":${pagination},"data":${data}}` : `{"data":${data}}`;
}

function intParam(v: string | null, dflt: number, min: number): number {
  if (v === null || !/^\d+$/.test(v)) return dflt;
  return Math.max(min, Number(v));
}

// ---------- auth ----------

const md5hex = (s: string) => createHash("md5").update(s).digest("hex");

// ---------- server ----------

interface Reply {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

export function startCapillarySimulator(opts: SimulatorOptions): Promise<CapillarySimulator> {
  let state = opts.state;
  let index = indexState(state);
  const ttl = opts.tokenTtlSeconds ?? 3600;
  const includeExited = opts.membersIncludeExited ?? true;
  const warns = opts.warning1656 ?? ((g: SimGroup) => g.id.endsWith("7"));
  const tokens = new Map<string, number>(); // token -> expiry (ms epoch)
  const faults: { fault: Fault; left: number }[] = [];
  const log: RequestLogEntry[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const basicExpected = `${opts.credentials.basic.username}:${md5hex(opts.credentials.basic.password)}`;

  const setState = (s: SimState) => {
    state = s;
    index = indexState(s);
  };

  const takeFault = (kind: Fault["kind"], path: string, q: URLSearchParams): Fault | null => {
    for (const f of faults) {
      if (f.left > 0 && f.fault.kind === kind && f.fault.path === path && (f.fault.query?.(q) ?? true)) {
        f.left -= 1;
        return f.fault;
      }
    }
    return null;
  };

  const authOf = (req: IncomingMessage): RequestLogEntry["auth"] => {
    const token = req.headers["x-cap-api-oauth-token"];
    if (typeof token === "string" && token !== "") {
      const exp = tokens.get(token);
      return exp !== undefined && exp > Date.now() ? "oauth" : "invalid";
    }
    const h = req.headers.authorization;
    if (typeof h === "string" && h.startsWith("Basic ")) {
      const decoded = Buffer.from(h.slice(6), "base64").toString("utf8");
      return decoded === basicExpected ? "basic" : "invalid";
    }
    return "none";
  };

  const lookup = (q: URLSearchParams, idParam: string, extParam: string): SimGroup | undefined => {
    const id = q.get(idParam);
    if (id !== null) return /^\d+$/.test(id) ? index.byId.get(canonicalId(id)) : undefined;
    const ext = q.get(extParam);
    return ext !== null ? index.byExternalId.get(ext) : undefined;
  };

  const notFound = (): Reply => ({ status: 400, body: errorBody(1632, "Invalid group id or external id") });

  const routes = (method: string, path: string, q: URLSearchParams, body: string): Reply => {
    if (method === "GET" && path === "/v2/userGroup2") {
      const g = lookup(q, "id", "externalId");
      if (!g) return notFound();
      const details = q.get("programDetails") === "true";
      const key = `${g.id}|${details}`;
      let text = index.groupJson.get(key);
      if (text === undefined) {
        text = groupJson(g, warns(g), details);
        index.groupJson.set(key, text);
      }
      return { status: 200, body: text };
    }
    if (method === "GET" && path === "/v2/userGroup2/members") {
      const name = q.get("identifierName") ?? "id";
      const value = q.get("identifierValue") ?? "";
      const g =
        name === "externalId"
          ? index.byExternalId.get(value)
          : /^\d+$/.test(value)
            ? index.byId.get(canonicalId(value))
            : undefined;
      if (!g) return notFound();
      let rows = index.memberRows.get(g.id);
      if (rows === undefined) {
        rows = g.members.filter((m) => includeExited || m.active).map(memberRow);
        index.memberRows.set(g.id, rows);
      }
      return { status: 200, body: paged(rows, q, q.get("paginationDetails") === "true") };
    }
    if (method === "GET" && path === "/v2/userGroup2/search") {
      const needle = (q.get("q") ?? "").toLowerCase();
      const rows = index.lowerNames.filter((n) => n.lower.includes(needle)).map((n) => searchRow(n.group));
      return { status: 200, body: paged(rows, q, true) };
    }
    if (method === "POST" && path === "/v2/userGroup2/extendedFieldSearch") {
      const wanted = parseExtendedFields(body);
      if (wanted === null) return { status: 400, body: errorBody(400, "extendedFields object is required") };
      const rows = state.groups
        .filter((g) => wanted.every(([k, v]) => g.extendedFields[k] === v))
        .map((g) => searchRow(g));
      return { status: 200, body: paged(rows, q, true) };
    }
    return { status: 404, body: errorBody(404, "not found") };
  };

  const tokenGenerate = (body: string): Reply => {
    const creds = parseKeySecret(body);
    if (creds === null) return { status: 400, body: errorBody(400, "key and secret are required") };
    if (creds.key !== opts.credentials.oauth.key || creds.secret !== opts.credentials.oauth.secret) {
      return { status: 401, body: errorBody(401, "invalid key or secret") };
    }
    const token = randomBytes(24).toString("hex");
    tokens.set(token, Date.now() + ttl * 1000);
    return { status: 200, body: toJson({ data: { accessToken: token, ttlSeconds: ttl } }) };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://sim");
    const method = req.method ?? "GET";
    const path = url.pathname;
    const q = url.searchParams;
    const body = method === "POST" ? await readBody(req) : "";
    const auth = authOf(req);
    const entry: RequestLogEntry = {
      at: Date.now(),
      method,
      path,
      query: Object.fromEntries(q),
      status: 0,
      auth,
      fault: null,
    };
    if (log.length >= MAX_LOG) log.splice(0, log.length - MAX_LOG + 1);
    log.push(entry);
    let reply: Reply;

    const statusFault = takeFault("status", path, q);
    if (statusFault?.kind === "status") {
      entry.fault = "status";
      const b = statusFault.body;
      reply = {
        status: statusFault.status,
        body:
          b === undefined
            ? errorBody(statusFault.status, "simulated fault")
            : typeof b === "string"
              ? b
              : JSON.stringify(b),
        ...(statusFault.retryAfter !== undefined
          ? { headers: { "retry-after": statusFault.retryAfter } }
          : {}),
      };
    } else {
      const delay = takeFault("delay", path, q);
      if (delay?.kind === "delay") {
        entry.fault = "delay";
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve();
          }, delay.ms);
          timers.add(t);
        });
      }
      if (method === "POST" && path === "/v3/oauth/token/generate") reply = tokenGenerate(body);
      else if (auth === "oauth" || auth === "basic") reply = routes(method, path, q, body);
      else reply = { status: 401, body: errorBody(401, "Unauthorized") };
      if (reply.status < 400) {
        const mutation = takeFault("mutate", path, q);
        if (mutation?.kind === "mutate") {
          entry.fault = entry.fault ?? "mutate";
          mutation.mutate(state);
          setState(state);
        }
      }
    }

    entry.status = reply.status;
    if (res.destroyed) return;
    res.writeHead(reply.status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(reply.body),
      ...reply.headers,
    });
    res.end(reply.body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(errorBody(500, "simulator error"));
      }
    });
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        setState,
        inject: (fault) => {
          faults.push({ fault, left: fault.times ?? 1 });
        },
        expireTokens: () => {
          for (const t of tokens.keys()) tokens.set(t, 0);
        },
        requests: () => log.map((e) => ({ ...e, query: { ...e.query } })),
        stop: () =>
          new Promise<void>((done) => {
            for (const t of timers) clearTimeout(t);
            timers.clear();
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > 1_000_000) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const keySecretSchema = z.object({ key: z.string(), secret: z.string() });
const extendedFieldSearchSchema = z.object({
  extendedFields: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
});

function parseJson<T>(schema: z.ZodType<T>, text: string): T | null {
  try {
    const r = schema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

function parseKeySecret(text: string): { key: string; secret: string } | null {
  return parseJson(keySecretSchema, text);
}

function parseExtendedFields(text: string): [string, string][] | null {
  const o = parseJson(extendedFieldSearchSchema, text);
  return o === null ? null : Object.entries(o.extendedFields).map(([k, v]) => [k, String(v)]);
}
