/** Shared shapes of the sample: what the generator hands the truth oracle, and the manifest. */
import type { SimState } from "./membership-types.ts";

export type Template = "points" | "points_redemption_summary" | "members";

/** One accepted Points row version, as generated (amounts in thousandths). */
export interface PointsRec {
  eventId: string;
  userId: string;
  /** dim_event_date_id, YYYYMMDD */
  date: string;
  allocated: bigint;
  deducted: bigint;
  /** dim_deduction_type_id exactly as written ("" on awards). */
  deductionType: string;
  /** event_name as written ("" on deductions). */
  eventName: string;
  /** dim_latest_updated_date_id + dim_latest_updated_time_id, YYYYMMDDHHMMSS. */
  updated: string;
  /** Delivery order of the file that carried this version (0 = first). */
  delivery: number;
}

/** One accepted Points Redemption Summary row. */
export interface SummaryRec {
  eventId: string;
  userId: string;
  date: string;
  pointsRedeemed: bigint;
  /** dim_redemption_type_id exactly as written. */
  redemptionType: string;
  autoUpdateTime: number;
  delivery: number;
}

/** One accepted Members (customer_summary) row version. */
export interface MemberRec {
  userId: string;
  loyaltyPoints: bigint;
  lifetimePoints: bigint;
  lifetimePurchased: bigint;
  /** User.slab_name as written. */
  tier: string;
  autoUpdateTime: number;
  delivery: number;
}

/** Counts per file, or per CSV entry of a zip (file = `<zip key>!<entry name>`). */
export interface FileStat {
  file: string;
  template: Template;
  rowsRead: number;
  rowsAccepted: number;
  rowsRejected: number;
}

export interface SampleCase {
  description: string;
  userIds: string[];
  groupIds: string[];
  /** What a correct report does with it. */
  expect: string;
}

export type SampleCases = Record<string, SampleCase>;

export interface TruthInput {
  months: string[];
  /** "Today": bounds members_total of a period that is still running. */
  now: Date;
  /** The membership each sync saw, in order, with the date (YYYY-MM-DD) of that sync. */
  syncs: { date: string; state: SimState }[];
  points: PointsRec[];
  summaries: SummaryRec[];
  members: MemberRec[];
  files: FileStat[];
  cases: SampleCases;
}

export type TruthRow = Record<string, string>;

export interface Truth {
  timeZone: "UTC";
  months: string[];
  groupSummary: TruthRow[];
  unattributed: TruthRow[];
  /** group_members.csv of every period: period, then group, then user (ids numerically). */
  groupMembers: TruthRow[];
  dataQuality: TruthRow[];
  cases: SampleCases;
}

export interface BadRow {
  file: string;
  /** 1-based data record number within the file (or zip entry). */
  record: number;
  /** 1-based physical line where the record starts (the header is line 1). */
  line: number;
  reason: string;
}

export interface ManifestFile {
  /** S3 key, relative to outDir. */
  key: string;
  template: Template;
  /** 0-based: the order a real schedule delivers the files. */
  deliveryOrder: number;
  deliveredAt: string;
  packaging: "csv" | "gzip" | "zip";
  kind: "full" | "incremental";
  /** Data records (non-blank, after the header), bad ones included. */
  rows: number;
  bom: boolean;
  lineEnd: "LF" | "CRLF";
  headerStyle: "raw" | "display";
  entries?: { name: string; rows: number; headerStyle: "raw" | "display"; lineEnd: "LF" | "CRLF" }[];
}

export interface SampleManifest {
  seed: number;
  months: string[];
  now: string;
  scale: number;
  timeZone: "UTC";
  files: ManifestFile[];
  groupIds: string[];
  userCount: number;
  membership: { initial: string; current: string; note: string };
  truth: string;
  cases: SampleCases;
  badRows: BadRow[];
  incremental: IncrementalFacts;
}

/** What the incremental files re-send. */
export interface IncrementalFacts {
  pointsChanged: number;
  /** allocated | deducted | deductionType | eventName -> rows changed that way. */
  pointsChangeKinds: Record<string, number>;
  exampleChangedEventIds: string[];
  /** Re-sent unchanged (same version). */
  duplicatedEventIds: string[];
  membersChanged: number;
  /** Re-sent later with an OLDER auto_update_time and other values: the earlier file's row must win. */
  membersStale: string[];
  /** Summary rows the incremental summary file re-sends unchanged (same version). */
  summaryDuplicatedEventIds: string[];
  /** Newer versions dated in another sample month: each counts in its new month only. */
  moved: MovedResend[];
}

/** A re-sent row whose newer version has its event date in another month. */
export interface MovedResend {
  template: "points" | "points_redemption_summary";
  eventId: string;
  userId: string;
  /** dim_event_date_id (YYYYMMDD) of the earlier version, then of the re-sent one. */
  from: string;
  to: string;
  why: string;
}
