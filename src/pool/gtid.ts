/**
 * GTID positions (MariaDB's `domain-server-sequence`, comma-separated for
 * several replication domains), for `pool.lastGtid` and read-your-writes.
 * Commits are observed on several connections whose replies may arrive out
 * of order, so a position keeps, per domain, the highest sequence number
 * seen: waiting for it on a replica (`MASTER_GTID_WAIT`) covers every commit
 * of the domain up to it.
 */

interface Gtid {
  readonly server: string;
  /** Decimal, no leading zeros: compared by length, then as text (no 2^53 limit). */
  readonly seq: string;
}

/** A GTID position, per replication domain the highest GTID noted. */
export class GtidPosition {
  private readonly domains = new Map<string, Gtid>();
  private text: string | undefined;

  /** Parses `0-1-5` or `0-1-5,1-1-9` (whitespace allowed); malformed parts are ignored. */
  static parse(text: string | undefined): GtidPosition {
    const position = new GtidPosition();
    if (text !== undefined) position.note(text);
    return position;
  }

  /** Adds a GTID or a position. Returns true when it moved the position forward. */
  note(gtids: string): boolean {
    let moved = false;
    for (const part of gtids.split(',')) {
      const match = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part);
      if (match === null) continue;
      const [, domain, server, rawSeq] = match as unknown as [string, string, string, string];
      const seq = rawSeq.replace(/^0+(?=\d)/, '');
      const known = this.domains.get(domain);
      if (known !== undefined && !greater(seq, known.seq)) continue;
      this.domains.set(domain, { server, seq });
      moved = true;
    }
    if (moved) this.text = undefined;
    return moved;
  }

  /** Adds every domain of another position. */
  merge(other: GtidPosition): void {
    const text = other.value;
    if (text !== undefined) this.note(text);
  }

  /** True when every domain of `other` is at or behind this position. */
  covers(other: GtidPosition): boolean {
    for (const [domain, gtid] of other.domains) {
      const mine = this.domains.get(domain);
      if (mine === undefined || greater(gtid.seq, mine.seq)) return false;
    }
    return true;
  }

  /** True when no GTID was noted. */
  get empty(): boolean {
    return this.domains.size === 0;
  }

  /** The position as MariaDB writes it (`0-1-5`, domains in ascending order), or undefined when empty. */
  get value(): string | undefined {
    if (this.text === undefined && this.domains.size > 0) {
      this.text = [...this.domains]
        .sort(([a], [b]) => Number(a) - Number(b))
        .map(([domain, { server, seq }]) => `${domain}-${server}-${seq}`)
        .join(',');
    }
    return this.text;
  }
}

function greater(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}

/**
 * The GTID an OK packet reports (`last_gtid` in its session state changes,
 * as mysql2 parses them), or undefined: no commit, or tracking is off.
 */
export function gtidOfResult(result: unknown): string | undefined {
  const changes = (result as { stateChanges?: { systemVariables?: Record<string, string> } } | null)?.stateChanges;
  const gtid = changes?.systemVariables?.['last_gtid'];
  return typeof gtid === 'string' && gtid !== '' ? gtid : undefined;
}
