import { z } from "zod";
import type { DeliveredObject } from "./ingest.ts";

/**
 * The S3 -> Lambda event, validated (never cast): only what ingestion needs. Keys arrive URL-encoded
 * the way S3 encodes them in events (form encoding: `+` is a space).
 */
const recordSchema = z.object({
  eventName: z.string(),
  eventTime: z.string(),
  s3: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().int().nonnegative().default(0),
      eTag: z.string().default(""),
      sequencer: z.string().default(""),
    }),
  }),
});

export const s3EventSchema = z.object({ Records: z.array(recordSchema) });

/** Decodes an event key; a stray `%` that is no escape is kept as it is rather than failing the event. */
export function decodeS3EventKey(key: string): string {
  const spaced = key.replace(/\+/g, " ");
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

export type ParsedRecord =
  | { kind: "object"; object: DeliveredObject }
  | { kind: "ignored"; eventName: string };

/** Parse an S3 event into delivered objects; non-ObjectCreated records are ignored (and said so). */
export function parseS3Event(event: unknown): ParsedRecord[] {
  const parsed = s3EventSchema.parse(event);
  return parsed.Records.map((r) => {
    if (!r.eventName.startsWith("ObjectCreated:")) return { kind: "ignored", eventName: r.eventName };
    return {
      kind: "object",
      object: {
        bucket: r.s3.bucket.name,
        key: decodeS3EventKey(r.s3.object.key),
        size: r.s3.object.size,
        eTag: r.s3.object.eTag.replaceAll('"', ""),
        sequencer: r.s3.object.sequencer,
        eventTime: r.eventTime,
      },
    };
  });
}
