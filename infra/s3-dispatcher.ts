import { randomBytes } from "node:crypto";
import {
  Agent,
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type ServerResponse,
} from "node:http";
import { pipeline } from "node:stream";
import type { S3Event, S3EventRecord } from "aws-lambda";

/**
 * The S3 -> Lambda notification of the local stack: an HTTP reverse proxy in front of the S3 emulator.
 * Requests and responses stream through unchanged (bodies are never buffered). When an object creation
 * under `prefix` succeeds, the proxy HEADs the object upstream and invokes the target asynchronously with
 * an S3Event shaped exactly like the one S3 sends to Lambda (one record per event), retrying failures.
 * Clients must use path-style URLs (`forcePathStyle: true`).
 */

export type S3EventTarget = (event: S3Event) => Promise<void>;

export interface DrainResult {
  delivered: number;
  failed: { key: string; error: string }[];
}

export interface S3Dispatcher {
  endpoint: string;
  /** The function events are delivered to; null = no notification configured (events are not emitted). */
  setTarget(fn: S3EventTarget | null): void;
  /**
   * Resolves once no emission or delivery is pending or running (including ones that start while
   * draining), with what was delivered and what failed for good since the previous drain().
   */
  drain(): Promise<DrainResult>;
  /** Closes the proxy, then waits for pending deliveries. */
  stop(): Promise<void>;
}

export interface S3DispatcherOptions {
  /** The S3 emulator, e.g. http://127.0.0.1:4566. */
  upstream: string;
  region: string;
  /** Only keys starting with this emit events. Default `exports/`. */
  prefix?: string;
  bucketFilter?: (bucket: string) => boolean;
  /** Retries after a failed delivery (Lambda async invoke: 2). Default 2. */
  retries?: number;
  /** Delay before retry n (1-based) is retryDelayMs * 2^(n-1). Default 100 ms. */
  retryDelayMs?: number;
  /** Deliveries running at once. Default 4. */
  concurrency?: number;
  /** `s3.configurationId` of the records. Default `local-exports-notification`. */
  configurationId?: string;
  /** Listen port on 127.0.0.1; default 0 (OS-assigned). */
  port?: number;
}

export type CreatedEventName =
  | "ObjectCreated:Put"
  | "ObjectCreated:Copy"
  | "ObjectCreated:CompleteMultipartUpload";

// ---------------------------------------------------------------------------------------------------------
// Event key encoding
// ---------------------------------------------------------------------------------------------------------

/**
 * The object key as S3 writes it in event notifications: form URL encoding (space -> `+`, other bytes of the
 * UTF-8 form -> `%XX`), leaving `A-Z a-z 0-9 . - _ *` (the java.net.URLEncoder set) and `/` as they are.
 * So `+` -> `%2B`, `(` -> `%28`, `=` -> `%3D`, `~` -> `%7E`, `é` -> `%C3%A9`. Decode with
 * `decodeURIComponent(key.replace(/\+/g, " "))`.
 */
export function encodeS3EventKey(key: string): string {
  return key.replace(/[^A-Za-z0-9.\-_*/]/gu, (ch) => {
    if (ch === " ") return "+";
    let out = "";
    for (const b of Buffer.from(ch, "utf8")) out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    return out;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Request classification
// ---------------------------------------------------------------------------------------------------------

export interface ObjectWrite {
  bucket: string;
  key: string;
  /** The request path (still percent-encoded), reused for the HEAD. */
  path: string;
  eventName: CreatedEventName;
}

/** Query parameters that turn a PUT on an object into something other than PutObject/CopyObject. */
const PUT_SUBRESOURCES = new Set([
  "acl",
  "tagging",
  "retention",
  "legal-hold",
  "uploadid",
  "partnumber",
  "renameobject",
  "torrent",
]);

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Which object creation a request is, if any (path-style: /bucket/key). */
export function classifyWrite(method: string, url: string, headers: IncomingHttpHeaders): ObjectWrite | null {
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? "" : url.slice(q + 1));
  const slash = path.indexOf("/", 1);
  if (!path.startsWith("/") || slash === -1 || slash === path.length - 1) return null;
  let bucket: string;
  let key: string;
  try {
    bucket = decodeURIComponent(path.slice(1, slash));
    key = decodeURIComponent(path.slice(slash + 1));
  } catch {
    return null;
  }
  const names = [...query.keys()].map((k) => k.toLowerCase());
  const xId = query.get("x-id");
  if (method === "PUT") {
    if (names.some((n) => PUT_SUBRESOURCES.has(n))) return null;
    if (xId !== null && xId !== "PutObject" && xId !== "CopyObject") return null;
    const copy = header(headers, "x-amz-copy-source") !== undefined;
    return { bucket, key, path, eventName: copy ? "ObjectCreated:Copy" : "ObjectCreated:Put" };
  }
  if (method === "POST" && query.has("uploadId") && !query.has("uploads")) {
    if (xId !== null && xId !== "CompleteMultipartUpload") return null;
    return { bucket, key, path, eventName: "ObjectCreated:CompleteMultipartUpload" };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------------------------------------

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "upgrade",
]);

function forwardRequestHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  return out;
}

function forwardResponseHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? "";
    const lower = name.toLowerCase();
    // Node frames the body itself (chunked or content-length); never copy transfer-encoding.
    if (HOP_BY_HOP.has(lower) || lower === "transfer-encoding") continue;
    out.push(name, raw[i + 1] ?? "");
  }
  return out;
}

function sendProxyError(res: ServerResponse, err: Error): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>BadGateway</Code><Message>S3 dispatcher: upstream failed: ${err.message.replace(/[<&>]/g, "")}</Message></Error>`;
  res.writeHead(502, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function accessKeyOf(req: IncomingMessage, url: string): string | undefined {
  const auth = header(req.headers, "authorization");
  const m = auth ? /Credential=([^/,\s]+)/.exec(auth) : null;
  if (m?.[1]) return m[1];
  const q = url.indexOf("?");
  const cred = q === -1 ? null : new URLSearchParams(url.slice(q + 1)).get("X-Amz-Credential");
  return cred?.split("/")[0] || undefined;
}

function sourceIp(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? "127.0.0.1";
  return ip.startsWith("::ffff:") ? ip.slice(7) : ip;
}

// ---------------------------------------------------------------------------------------------------------
// Dispatcher
// ---------------------------------------------------------------------------------------------------------

interface PendingEvent {
  write: ObjectWrite;
  target: S3EventTarget;
  eventTime: string;
  principalId: string;
  sourceIPAddress: string;
  requestId: string;
  hostId: string;
}

interface HeadResult {
  size: number;
  eTag: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

export async function startS3Dispatcher(opts: S3DispatcherOptions): Promise<S3Dispatcher> {
  const upstream = new URL(opts.upstream);
  const upstreamHost = upstream.hostname.replace(/^\[|\]$/g, "");
  const upstreamPort = Number(upstream.port || 80);
  const prefix = opts.prefix ?? "exports/";
  const retries = Math.max(0, opts.retries ?? 2);
  const retryDelayMs = Math.max(0, opts.retryDelayMs ?? 100);
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const configurationId = opts.configurationId ?? "local-exports-notification";
  const agent = new Agent({ keepAlive: true });

  let target: S3EventTarget | null = null;

  // Accounting: `pending` counts events from the successful write until their delivery settles.
  let pending = 0;
  let delivered = 0;
  let failed: DrainResult["failed"] = [];
  let drainWaiters: ((r: DrainResult) => void)[] = [];
  let idleWaiters: (() => void)[] = [];

  // Sequencer: one counter for all keys (hence increasing per key), fixed width, seeded by the clock so
  // that it keeps increasing across restarts too.
  let sequence = BigInt(Date.now()) << 16n;
  const nextSequencer = () => {
    sequence += 1n;
    return sequence.toString(16).toUpperCase().padStart(18, "0");
  };

  // Emission is serialized per object, so events of one key get sequencers in write order.
  const chains = new Map<string, Promise<void>>();

  // Bounded delivery queue.
  const queue: (() => Promise<void>)[] = [];
  let running = 0;

  function settle(): void {
    pending -= 1;
    if (pending > 0) return;
    const waiters = drainWaiters;
    const idle = idleWaiters;
    drainWaiters = [];
    idleWaiters = [];
    if (waiters.length > 0) {
      const result = { delivered, failed };
      delivered = 0;
      failed = [];
      for (const w of waiters) w(result);
    }
    for (const w of idle) w();
  }

  function pump(): void {
    while (running < concurrency) {
      const job = queue.shift();
      if (!job) return;
      running += 1;
      void job().finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  async function deliver(record: S3EventRecord, fn: S3EventTarget, key: string): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await sleep(retryDelayMs * 2 ** (attempt - 1));
      try {
        // A fresh copy per attempt: a handler that mutates its event cannot affect the retry.
        await Promise.resolve().then(() => fn({ Records: [structuredClone(record)] }));
        delivered += 1;
        return;
      } catch (e) {
        lastError = e;
      }
    }
    failed.push({ key, error: errorText(lastError) });
  }

  function head(path: string): Promise<HeadResult> {
    return new Promise((ok, fail) => {
      const req = request(
        {
          host: upstreamHost,
          port: upstreamPort,
          method: "HEAD",
          path,
          agent,
          headers: { host: upstream.host },
        },
        (res) => {
          res.resume();
          const status = res.statusCode ?? 0;
          const size = Number(res.headers["content-length"]);
          const eTag = (header(res.headers, "etag") ?? "").replace(/"/g, "");
          if (status !== 200) fail(new Error(`HEAD ${path} after the write answered ${status}`));
          else if (!Number.isFinite(size) || eTag === "") fail(new Error(`HEAD ${path} lacks size or ETag`));
          else ok({ size, eTag });
        },
      );
      req.on("error", fail);
      req.end();
    });
  }

  function buildRecord(ev: PendingEvent, h: HeadResult): S3EventRecord {
    return {
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: opts.region,
      eventTime: ev.eventTime,
      eventName: ev.write.eventName,
      userIdentity: { principalId: ev.principalId },
      requestParameters: { sourceIPAddress: ev.sourceIPAddress },
      responseElements: { "x-amz-request-id": ev.requestId, "x-amz-id-2": ev.hostId },
      s3: {
        s3SchemaVersion: "1.0",
        configurationId,
        bucket: {
          name: ev.write.bucket,
          ownerIdentity: { principalId: "LOCALOWNER" },
          arn: `arn:aws:s3:::${ev.write.bucket}`,
        },
        object: {
          key: encodeS3EventKey(ev.write.key),
          size: h.size,
          eTag: h.eTag,
          sequencer: nextSequencer(),
        },
      },
    };
  }

  async function emit(ev: PendingEvent): Promise<void> {
    let record: S3EventRecord;
    try {
      record = buildRecord(ev, await head(ev.write.path));
    } catch (e) {
      failed.push({ key: ev.write.key, error: errorText(e) });
      settle();
      return;
    }
    queue.push(() => deliver(record, ev.target, ev.write.key).finally(settle));
    pump();
  }

  function schedule(ev: PendingEvent): void {
    pending += 1;
    const id = `${ev.write.bucket}/${ev.write.key}`;
    const next = (chains.get(id) ?? Promise.resolve()).then(() => emit(ev));
    chains.set(id, next);
    void next.then(() => {
      if (chains.get(id) === next) chains.delete(id);
    });
  }

  function wantsEvent(w: ObjectWrite | null): w is ObjectWrite {
    if (w === null || !w.key.startsWith(prefix)) return false;
    return opts.bucketFilter?.(w.bucket) ?? true;
  }

  function handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const write = classifyWrite(method, url, req.headers);
    const fn = target;
    const emits = fn !== null && wantsEvent(write);
    const principalId = `AWS:${accessKeyOf(req, url) ?? "anonymous"}`;

    let continued = !expectContinue;
    const up = request({
      host: upstreamHost,
      port: upstreamPort,
      method,
      path: url,
      headers: forwardRequestHeaders(req.headers),
      agent,
    });
    up.on("error", (err) => sendProxyError(res, err));
    up.on("response", (upRes) => {
      const status = upRes.statusCode ?? 502;
      res.writeHead(status, upRes.statusMessage, forwardResponseHeaders(upRes.rawHeaders));
      pipeline(upRes, res, () => {});
      upRes.on("end", () => {
        if (!continued) up.destroy(); // final answer without 100 Continue: the body was never sent
        if (emits && status >= 200 && status < 300 && write !== null) {
          schedule({
            write,
            target: fn,
            eventTime: new Date().toISOString(),
            principalId,
            sourceIPAddress: sourceIp(req),
            requestId:
              header(upRes.headers, "x-amz-request-id") ?? randomBytes(8).toString("hex").toUpperCase(),
            hostId: header(upRes.headers, "x-amz-id-2") ?? randomBytes(48).toString("base64"),
          });
        }
      });
    });
    const sendBody = () => {
      continued = true;
      pipeline(req, up, (err) => {
        if (err) up.destroy(err);
      });
    };
    if (expectContinue) {
      up.on("continue", () => {
        res.writeContinue();
        sendBody();
      });
      up.flushHeaders();
    } else {
      sendBody();
    }
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
  }

  const server = createServer((req, res) => handle(req, res, false));
  server.on("checkContinue", (req, res) => handle(req, res, true));
  server.requestTimeout = 0; // large uploads may take longer than Node's default 5 minutes
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", fail);
      ok();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("S3 dispatcher: no TCP address");
  const { port } = address;

  function waitIdle(): Promise<void> {
    if (pending === 0) return Promise.resolve();
    return new Promise((r) => idleWaiters.push(r));
  }

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    setTarget(fn) {
      target = fn;
    },
    drain() {
      if (pending === 0) {
        const result = { delivered, failed };
        delivered = 0;
        failed = [];
        return Promise.resolve(result);
      }
      return new Promise((r) => drainWaiters.push(r));
    },
    stop() {
      stopping ??= (async () => {
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
        await waitIdle();
        agent.destroy();
      })();
      return stopping;
    },
  };
}
