/**
 * Ports: the interfaces that domain code and the use cases in lib/ depend on.
 * Adapters in lib/adapters implement them against AWS and the Capillary API.
 */

/** A user group as returned by `GET /v2/userGroup2?id=..&programDetails=true`, ids as strings. */
export interface CapillaryGroup {
  id: string;
  externalId: string | null;
  groupName: string;
  /** ACTIVE | INACTIVE | DELETED (kept as sent). */
  groupStatus: string;
  users: CapillaryGroupUser[];
  programs: CapillaryProgram[];
  /** Warnings such as 1656 are not failures; they are passed on for logging. */
  warnings: { code: number; message: string }[];
}

export interface CapillaryGroupUser {
  userId: string;
  primaryMember: boolean;
  defaultGroup: boolean;
  /** false = the member left the group. */
  active: boolean;
}

export interface CapillaryProgram {
  programId: string;
  programTitle: string | null;
  /** Decimal as text, exactly as sent (lossless). */
  loyaltyPoints: string;
  lifetimePoints: string | null;
  currentSlab: string | null;
  slabSNo: number | null;
}

/** One row of `GET /v2/userGroup2/members`. `inActive` is not trusted and not exposed. */
export interface CapillaryMember {
  userId: string;
  /** YYYY-MM-DD, or null when not sent. */
  joinedOn: string | null;
  role: string;
  permissions: string[];
  primaryMember: boolean;
}

export interface CapillaryGroupRef {
  groupId: string;
  groupName: string | null;
  groupExternalId: string | null;
}

export interface CapillaryApi {
  /** null when the API answers with error 1632 (group id / external id not valid: the group is gone). */
  getGroup(ref: { id: string } | { externalId: string }): Promise<CapillaryGroup | null>;
  /** Every member of the group, following pagination to the end. */
  listMembers(groupId: string): AsyncIterable<CapillaryMember>;
  /** Name search (`/v2/userGroup2/search?q=`), every page. */
  searchGroups(q: string): AsyncIterable<CapillaryGroupRef>;
  /**
   * Groups whose extended fields equal every given value (`POST /v2/userGroup2/extendedFieldSearch` with
   * `{extendedFields}`), every page.
   */
  extendedFieldSearch(fields: Readonly<Record<string, string>>): AsyncIterable<CapillaryGroupRef>;
}
