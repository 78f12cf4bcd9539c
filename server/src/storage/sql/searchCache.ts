import type { SearchClause, SearchQuery, SearchResult } from '../FhirStore.js';
import { LruMap } from './lru.js';

/** A cached page: the stored JSON of each match, as the database returned it. */
export interface CachedPage {
  contents: string[];
  total?: number;
  hasMore: boolean;
  edges?: SearchResult['edges'];
}

/**
 * Search results, and on PostgreSQL reads by id, of rarely written types (the provider directory, which
 * every `$submit` reads).
 * A write of a type drops that type's pages; a search fills only if no write of its type happened
 * while it ran (the type's epoch), the same rule as ReadCache. Searches that join other types
 * (chains) are never cached. With one writer process (PGlite) its own writes are all there is; where
 * several processes share PostgreSQL, each learns of the others' committed writes by notification,
 * and caches nothing while it cannot hear them (`suspend` until `resume`).
 */
export class SearchCache {
  private readonly pages: LruMap<string, { resourceType: string; page: CachedPage }>;
  private readonly epochs = new Map<string, number>();
  private generation = 0;
  private suspended = false;

  constructor(
    private readonly cachedTypes: ReadonlySet<string>,
    capacity: number,
  ) {
    this.pages = new LruMap(capacity);
  }

  caches(resourceType: string): boolean {
    return this.cachedTypes.has(resourceType);
  }

  /** The cache key of a query, or undefined when it is not cached (other types joined; suspended). */
  keyOf(query: SearchQuery): string | undefined {
    if (this.suspended || !this.cachedTypes.has(query.resourceType) || !query.clauses.every(ownTypeOnly)) return undefined;
    return JSON.stringify(query);
  }

  /**
   * The cache key of a read by id, where no cache of current versions serves reads (PostgreSQL): every
   * `$submit` reads a dozen directory resources by id. A read that found nothing is not cached.
   */
  keyOfRead(resourceType: string, id: string): string | undefined {
    if (this.suspended || !this.cachedTypes.has(resourceType)) return undefined;
    return `${resourceType}/${id}`;
  }

  /** Writes may go unseen: drop everything and cache nothing until `resume`. */
  suspend(): void {
    this.suspended = true;
    this.dropAll();
  }

  /** Writes are seen again; what was cached before may be stale. */
  resume(): void {
    this.dropAll();
    this.suspended = false;
  }

  private dropAll(): void {
    this.pages.clear();
    this.generation++;
  }

  get(key: string): CachedPage | undefined {
    return this.pages.get(key)?.page;
  }

  /** Marks the start of a search of `resourceType`; pass the result to `fill`. */
  begin(resourceType: string): string {
    return `${this.generation}/${this.epochs.get(resourceType) ?? 0}`;
  }

  fill(key: string, resourceType: string, page: CachedPage, startedAt: string): void {
    if (!this.suspended && startedAt === this.begin(resourceType)) this.pages.set(key, { resourceType, page });
  }

  invalidate(resourceType: string): void {
    if (!this.cachedTypes.has(resourceType)) return;
    this.epochs.set(resourceType, (this.epochs.get(resourceType) ?? 0) + 1);
    this.pages.clear((entry) => entry.resourceType === resourceType);
  }
}

const ownTypeOnly = (clause: SearchClause): boolean =>
  clause.kind === 'anyOf' ? clause.alternatives.every((all) => all.every(ownTypeOnly)) : clause.kind !== 'chain' && clause.kind !== 'reverseChain' && clause.kind !== 'patientCompartment';
