// Deterministic resolution of near-duplicate clusters: pairs join items into connected components (union–find);
// each component keeps its best-ranked item (earliest spec component, then the keyed order) and drops the rest.
// The result depends only on the set of pairs and the ranks, never on the order pairs arrive in.

export class NearDupClusters {
  private readonly parent: Int32Array;

  /** `better(a, b)`: true when item a should be kept over item b (a strict total order on item indices). */
  constructor(
    n: number,
    private readonly better: (a: number, b: number) => boolean,
  ) {
    this.parent = new Int32Array(n).map((_, i) => i);
  }

  /** The component's best item. */
  find(i: number): number {
    let r = i;
    while (this.parent[r] !== r) r = this.parent[r];
    // Path compression: every item on the way points at the root.
    while (this.parent[i] !== r) {
      const next = this.parent[i];
      this.parent[i] = r;
      i = next;
    }
    return r;
  }

  /** Joins the components of i and j; the better root stays the root. */
  union(i: number, j: number): void {
    const a = this.find(i);
    const b = this.find(j);
    if (a === b) return;
    if (this.better(a, b)) this.parent[b] = a;
    else this.parent[a] = b;
  }

  /** The item kept in place of i (i itself when i is kept). */
  keptFor(i: number): number {
    return this.find(i);
  }
}
