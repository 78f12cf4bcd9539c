import type { Resource } from 'fhir/r4.js';

/** A parsed search, independent of SQL. Built by fhir/search/parse.ts. */
export interface SearchQuery {
  resourceType: string;
  /** All clauses must hold (AND); the values inside one clause are alternatives (OR). */
  clauses: SearchClause[];
  sort: SortRule[];
  count: number;
  offset: number;
  /** Compute the total number of matches. */
  total: boolean;
  /** Where the page starts in the sort order, instead of `offset` (keyset paging: see PageCursor). */
  cursor?: PageCursor;
}

/**
 * A row's place in a search's sort order: its value of each sort rule (`null` when it has none; as
 * text) and its id, which breaks ties.
 */
export interface SortPosition {
  keys: (string | null)[];
  id: string;
}

/**
 * A page read from a position, not an offset: the matches after `at` (or before it, read backwards),
 * whatever was added or stopped matching since that position was handed out. `before` without `at`
 * is the last page.
 */
export interface PageCursor {
  direction: 'after' | 'before';
  at?: SortPosition;
}

/** Parameters of Resource.meta, searched on every type (not in the registry); `#param` marks a value as for the others (migration 6). */
export const META_TOKEN_PARAMS: ReadonlySet<string> = new Set(['_profile', '_tag', '_security']);

export type SearchClause =
  | { kind: 'id'; ids: string[]; not?: boolean }
  | { kind: 'token'; param: string; values: string[]; not: boolean }
  | { kind: 'missing'; param: string; missing: boolean }
  | { kind: 'reference'; param: string; values: string[] }
  | { kind: 'string'; param: string; mode: 'starts' | 'exact' | 'contains'; values: string[] }
  | { kind: 'date'; param: string; values: DateCondition[] }
  | { kind: 'lastUpdated'; values: DateCondition[] }
  | { kind: 'number'; param: string; values: NumberCondition[] }
  | { kind: 'compartment'; compartment: string }
  /** `compartment`: the resources the chain passes through must be in it too (a patient-bound token). */
  | { kind: 'chain'; param: string; targetType: string; clause: SearchClause; compartment?: string }
  | { kind: 'reverseChain'; sourceType: string; refParam: string; clause: SearchClause; compartment?: string }
  /** Every clause of at least one alternative matches (the query restrictions of a token's v2 scopes). */
  | { kind: 'anyOf'; alternatives: SearchClause[][] }
  /** The resource is in no patient's compartment, or in that of a stored Patient every clause of `patient` matches (whom a user may see). */
  | { kind: 'patientCompartment'; patient: SearchClause[] };

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';
export interface DateCondition {
  prefix: Prefix;
  lo: Date;
  hi: Date;
}
export interface NumberCondition {
  prefix: Prefix;
  value: number;
  /** Half the precision of the value as written (for eq on 100 means [99.5, 100.5)). */
  tolerance: number;
  system?: string;
  unit?: string;
}

export interface SortRule {
  param: string;
  kind: 'id' | 'lastUpdated' | 'string' | 'date' | 'number' | 'token';
  descending: boolean;
}

/**
 * What a sort rule's key is, as a SortPosition writes it: an instant (UTC, with microseconds:
 * `2026-01-02T03:04:05.678900Z`), a decimal (`-12.50`) or text.
 */
export const SORT_KEY_KINDS: Readonly<Record<SortRule['kind'], 'instant' | 'decimal' | 'text'>> = {
  id: 'text',
  lastUpdated: 'instant',
  date: 'instant',
  string: 'text',
  number: 'decimal',
  token: 'text',
};

export interface SearchResult {
  resources: Resource[];
  total?: number;
  /** True when at least one more match follows this page (precedes it, for a cursor read `before`). */
  hasMore: boolean;
  /** The sort positions of the page's first and last match (absent when it has none). */
  edges?: { first: SortPosition; last: SortPosition };
}

export interface HistoryEntry {
  resourceType: string;
  id: string;
  versionId: string;
  lastUpdated: string;
  deleted: boolean;
  /** Absent for a deletion. */
  resource?: Resource;
  /** The version was the first one (a create). */
  created: boolean;
  /** The version came after a deletion (a create at the deleted id). */
  recreated: boolean;
  /** Its place in HISTORY_ORDER (newest first), for a cursor. */
  position: SortPosition;
}

/**
 * History's order, newest first, as sort rules (a cursor's keys: when written, version, type; then the id):
 * what a history cursor (`_cursor`) is checked against, as a search's is against its `_sort`.
 */
export const HISTORY_ORDER: readonly SortRule[] = [
  { param: '_lastUpdated', kind: 'lastUpdated', descending: true },
  { param: '_version', kind: 'number', descending: true },
  { param: '_type', kind: 'string', descending: true },
];

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  since?: Date;
  /** Only the versions current at some point in this period (`_at`, both ends included): written by its end, not replaced by its start. */
  at?: { from: Date; to: Date };
  /** Only versions written at or before this instant: pins a paged walk to the versions there were on its first page. */
  before?: Date;
  /** Only versions of these types (those the caller's scopes allow); all types when absent. */
  types?: readonly string[];
  /** Versions of `types` only of resources now in this patient's compartment (`Patient/x`); other types as they are. */
  compartment?: { patient: string; types: readonly string[] };
  count: number;
  offset: number;
  /**
   * The versions after `at` in HISTORY_ORDER (older ones), or before it (newer ones, read nearest first: oldest first),
   * instead of `offset`: a version written meanwhile shifts nothing.
   */
  cursor?: { direction: PageCursor['direction']; at: SortPosition };
}

export interface OutboxMessage {
  id: string;
  kind: string;
  payload: unknown;
  attempts: number;
  notBefore: Date;
}

/** One event of a topic-based Subscription as its event log keeps it (`Subscription/{id}/$events`). */
export interface SubscriptionEventRecord {
  subscriptionId: string;
  number: number;
  /** When it happened: the lastUpdated of the focus version. */
  timestamp: string;
  focus: { resourceType: string; id: string; versionId: string };
  /** The focus version was its resource's first (a create). */
  created: boolean;
}

/**
 * Called inside the transaction of every create, update and delete, with a store bound to that
 * transaction: what it enqueues (subscription notifications) commits or rolls back with the change.
 */
export type WriteHook = (tx: FhirStore, change: { resource?: Resource; previous?: Resource; resourceType: string; id: string; kind: 'create' | 'update' | 'delete' }) => Promise<void>;

/**
 * The one storage interface. Implementations keep every version, index the search parameters and
 * run `transaction` atomically (all or nothing).
 */
export interface FhirStore {
  /** Current version, or throws notFound (404) / gone (410). */
  read(resourceType: string, id: string): Promise<Resource>;
  /** Current version or undefined (also for deleted). */
  find(resourceType: string, id: string): Promise<Resource | undefined>;
  vread(resourceType: string, id: string, versionId: string): Promise<Resource>;
  /** Stores a new resource; `resource.id` is kept if set (update-as-create), otherwise assigned. */
  create<T extends Resource>(resource: T): Promise<T>;
  /** Stores many new resources with a handful of statements (ids kept if set, else assigned); for AuditEvents and bulk loads. */
  createMany(resources: Resource[]): Promise<Resource[]>;
  /** New version of an existing resource; `ifMatch` is the expected current versionId (412 on mismatch). */
  update<T extends Resource>(resource: T, ifMatch?: string): Promise<{ resource: T; created: boolean }>;
  /** Marks deleted (a new version); returns false if there was nothing to delete. */
  delete(resourceType: string, id: string, ifMatch?: string): Promise<boolean>;
  search(query: SearchQuery): Promise<SearchResult>;
  /** Versions newest first, in one total order (time, version, type, id) so offset pages never overlap. */
  history(query: HistoryQuery): Promise<HistoryEntry[]>;
  /** Runs `fn` atomically; the store passed to `fn` sees its own writes. */
  transaction<T>(fn: (tx: FhirStore) => Promise<T>): Promise<T>;
  /** Serializes callers that pass the same key until the enclosing transaction ends. */
  lock(key: string): Promise<void>;
  /**
   * Reads and searches of `resourceType` in this transaction skip the caches shared with other transactions,
   * which on PostgreSQL may not yet have heard another process's write: for a search whose answer decides a
   * write (conditional create, update and delete).
   */
  readThrough(resourceType: string): void;

  /** Outbox: written in the caller's transaction, drained by the outbound worker. */
  enqueue(kind: string, payload: unknown, dedupeKey?: string): Promise<void>;
  claimOutbox(limit: number, leaseMs: number): Promise<OutboxMessage[]>;
  completeOutbox(id: string): Promise<void>;
  failOutbox(id: string, error: string, retryAt: Date | undefined): Promise<void>;
  /** Messages waiting to be sent (pending or leased). */
  outboxDepth(): Promise<number>;

  /**
   * Event log of topic-based Subscriptions, for `$events`: written in the transaction that numbers the event,
   * keeping the newest `keep` events of the subscription.
   */
  recordSubscriptionEvent(event: SubscriptionEventRecord, keep: number): Promise<void>;
  /** Logged events numbered `from` to `to` (both included) that happened at or after `since`, in number order, at most `limit`. */
  subscriptionEvents(subscriptionId: string, range: { from: number; to: number; since: Date; limit: number }): Promise<SubscriptionEventRecord[]>;
  /** Forgets logged events: those that happened before an instant (every subscription's), or all of one subscription. */
  forgetSubscriptionEvents(which: { before: Date } | { subscriptionId: string }): Promise<void>;

  /**
   * Short-lived shared state for the auth server (authorization codes, launch contexts, refresh
   * tokens, used assertion ids), kept in the database so several server processes agree.
   */
  putEphemeral(key: string, value: unknown, expiresAt: Date): Promise<void>;
  getEphemeral(key: string): Promise<unknown | undefined>;
  /** Reads and deletes in one step: a second caller gets undefined (single-use codes). */
  takeEphemeral(key: string): Promise<unknown | undefined>;
  /** True the first time a key is claimed before it expires (replay protection for `jti`). */
  claimOnce(key: string, expiresAt: Date): Promise<boolean>;

  /** Registers a hook run inside the transaction of every write. */
  addWriteHook(hook: WriteHook): void;

  /**
   * Recomputes the search index of every current resource (of `resourceType`, or all), in batches of
   * their own transactions: after a SearchParameter is added or changed. Returns how many were indexed.
   */
  reindex(resourceType?: string, onProgress?: (indexed: number) => void): Promise<number>;

  /**
   * VACUUM ANALYZE: refreshes the query planner's statistics, merges index pending lists and reclaims dead
   * rows (after bulk loads; periodically where nothing else does). `tables`: all of them, those never
   * analyzed, or those changed enough since their last analyze (PostgreSQL's autovacuum thresholds).
   */
  analyze(tables?: 'all' | 'never-analyzed' | 'changed'): Promise<void>;
  close(): Promise<void>;
}
