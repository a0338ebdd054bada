import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

/** Bodies above this go through a multipart Upload (emulators cap a single PutObject; S3 at 5 GB). */
const SINGLE_PUT_MAX = 8 * 1024 * 1024;

export interface ObjectBody {
  body: AsyncIterable<Uint8Array>;
  /** Release the connection when the body was not consumed to the end. */
  destroy(): void;
  contentLength: number | null;
  contentEncoding: string | null;
  eTag: string | null;
}

/** S3 access used by the use cases: streaming reads, small and large writes, listings. */
export class S3Objects {
  constructor(private readonly s3: S3Client) {}

  /** A streaming read; `ifMatch` pins the version (a 412 means the key was overwritten since). */
  async get(bucket: string, key: string, ifMatch?: string): Promise<ObjectBody> {
    const r = await this.s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: key, ...(ifMatch ? { IfMatch: `"${ifMatch}"` } : {}) }),
    );
    const body = r.Body as Readable | undefined;
    if (!body) throw new Error(`s3://${bucket}/${key} has no body`);
    return {
      body,
      destroy: () => body.destroy(),
      contentLength: r.ContentLength ?? null,
      contentEncoding: r.ContentEncoding ?? null,
      eTag: r.ETag?.replaceAll('"', "") ?? null,
    };
  }

  async getText(bucket: string, key: string): Promise<string | null> {
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return (await r.Body?.transformToString("utf-8")) ?? null;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async put(bucket: string, key: string, body: string | Uint8Array, contentType: string): Promise<void> {
    const bytes = typeof body === "string" ? Buffer.from(body, "utf-8") : body;
    if (bytes.byteLength <= SINGLE_PUT_MAX) {
      await this.s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentType: contentType }),
      );
      return;
    }
    await new Upload({
      client: this.s3,
      params: { Bucket: bucket, Key: key, Body: bytes, ContentType: contentType },
    }).done();
  }

  /** Upload a local file, streaming; multipart above the single-put size. */
  async putFile(bucket: string, key: string, path: string, contentType: string): Promise<void> {
    const { size } = await stat(path);
    if (size <= SINGLE_PUT_MAX) {
      const { readFile } = await import("node:fs/promises");
      await this.put(bucket, key, await readFile(path), contentType);
      return;
    }
    await new Upload({
      client: this.s3,
      params: { Bucket: bucket, Key: key, Body: createReadStream(path), ContentType: contentType },
      queueSize: 2,
    }).done();
  }

  async delete(bucket: string, key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  async *list(bucket: string, prefix: string): AsyncGenerator<{ key: string; size: number; eTag: string }> {
    let token: string | undefined;
    do {
      const r = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of r.Contents ?? []) {
        if (o.Key) yield { key: o.Key, size: o.Size ?? 0, eTag: o.ETag?.replaceAll('"', "") ?? "" };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }
}

export function isNotFound(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return name === "NoSuchKey" || name === "NotFound" || status === 404;
}

export function isPreconditionFailed(e: unknown): boolean {
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return status === 412;
}
