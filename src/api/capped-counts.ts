/**
 * Things held open at once (event streams, uploads read whole, client connections), capped in
 * total and per key (a principal, a peer address). One counter for every such cap in the API.
 */
export class CappedCounts {
  private total = 0;
  private readonly byKey = new Map<string, number>();

  /** `perKey` null: only the total is capped. */
  constructor(
    private readonly max: number,
    private readonly perKey: number | null,
  ) {}

  /** How many are held now. */
  get held(): number {
    return this.total;
  }

  /**
   * Takes one for `key`: the function that gives it back (calling it again does nothing), or which
   * cap refused it (`max`: the total; `per_key`: the key's).
   */
  take(key: string): (() => void) | 'max' | 'per_key' {
    if (this.total >= this.max) return 'max';
    const mine = this.byKey.get(key) ?? 0;
    if (this.perKey !== null && mine >= this.perKey) return 'per_key';
    this.total++;
    this.byKey.set(key, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byKey.get(key) ?? 1) - 1;
      if (left > 0) this.byKey.set(key, left);
      else this.byKey.delete(key);
    };
  }
}
