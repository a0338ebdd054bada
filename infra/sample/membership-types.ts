/**
 * The state of the Capillary simulator: groups and their members, as the API would report them at one
 * moment. Ids are decimal strings (they may exceed 2^53; the simulator sends them as JSON numbers, verbatim).
 */
export interface SimGroup {
  id: string;
  externalId: string | null;
  groupName: string;
  groupStatus: "ACTIVE" | "INACTIVE" | "DELETED";
  maxGroupSize: number;
  /** ISO 8601 with offset. */
  createdOn: string;
  /** Decimal string. */
  lifeTimePurchases: string;
  extendedFields: Record<string, string>;
  programs: {
    programId: string;
    programTitle: string;
    /** Decimal strings (up to 3 places). */
    loyaltyPoints: string;
    lifetimePoints: string;
    redeemed: string;
    expired: string;
    currentSlab: string;
    slabSNo: number;
  }[];
  members: SimMember[];
}

export interface SimMember {
  userId: string;
  /** YYYY-MM-DD */
  joinedOn: string;
  role: "PRIMARY" | "SECONDARY";
  /** Sent by the API as one comma-separated string. */
  permissions: string[];
  primaryMember: boolean;
  defaultGroup: boolean;
  /** false = the member left the group (still listed by the API with active:false). */
  active: boolean;
  pointsContributed: string;
}

export interface SimState {
  groups: SimGroup[];
}

export interface SimCredentials {
  /** OAuth: POST /v3/oauth/token/generate {key, secret}. */
  oauth: { key: string; secret: string };
  /** Basic: base64(username + ":" + md5hex(password)). */
  basic: { username: string; password: string };
}
