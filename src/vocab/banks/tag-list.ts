/**
 * A compiled vocabulary's tags without an object per tag: most tags of a seeded vocabulary are
 * built-in tags exactly as the pack has them, and every vocabulary has its own 4,535 of them.
 * Their ids are kept in one string and their index and threshold in the bank's own arrays; tag
 * entries are made when read. Only the tags that differ from the pack (own tags, renamed or
 * re-described built-in ones) keep an entry. Measured (bench/tenants.bench.ts): 1.5 MiB of heap
 * per seeded vocabulary with one object per tag, and that much garbage per eviction.
 */
import type { BuiltinVocabulary, LabelBank } from '../../inference/index.ts';
import type { SnapshotDescription, SnapshotTag, SnapshotTagList } from './snapshot.ts';

/** Canonical UUIDs are 36 characters. */
const ID_LENGTH = 36;

/** Tag ids in one string (one object instead of thousands). */
export class IdList {
  private readonly joined: string;
  readonly length: number;

  constructor(ids: readonly string[]) {
    for (const id of ids) if (id.length !== ID_LENGTH) throw new RangeError(`tag id ${JSON.stringify(id)} is not a canonical UUID`);
    this.joined = ids.join('');
    this.length = ids.length;
  }

  at(index: number): string {
    return this.joined.slice(index * ID_LENGTH, (index + 1) * ID_LENGTH);
  }

  toArray(): string[] {
    return Array.from({ length: this.length }, (_, i) => this.at(i));
  }

  /** Characters it holds (for the cache's budget). */
  get bytes(): number {
    return this.joined.length;
  }
}

/**
 * The tags of a bank, tag i being bank row i: `entries` for the tags that differ from the pack,
 * the others built-in tags as packed (index `bank.rowOf[i]` of the pack, threshold from the bank).
 */
export class CompactTagList implements SnapshotTagList {
  constructor(
    private readonly ids: IdList,
    /** Bank index → position in `ids`. */
    private readonly positions: Int32Array,
    private readonly entries: ReadonlyMap<number, SnapshotTag>,
    private readonly bank: LabelBank | null,
    private readonly pack: BuiltinVocabulary | undefined,
  ) {}

  get length(): number {
    return this.positions.length;
  }

  at(index: number): SnapshotTag | undefined {
    const i = index < 0 ? this.positions.length + index : index;
    if (!(i >= 0 && i < this.positions.length)) return undefined;
    return this.entries.get(i) ?? new PackedTag(this.ids.at(this.positions[i]!), this.pack!, this.bank!.rowOf[i]!, this.bank!.thresholds[i]!);
  }

  *[Symbol.iterator](): Iterator<SnapshotTag> {
    for (let i = 0; i < this.positions.length; i++) yield this.at(i)!;
  }
}

const packedNames = new WeakMap<BuiltinVocabulary, readonly Readonly<Record<string, string>>[]>();

/**
 * A built-in tag exactly as the pack has it, with this vocabulary's id and threshold: made when
 * read (a result's tags, a listing), never kept, since every seeded vocabulary has thousands.
 */
export class PackedTag implements SnapshotTag {
  constructor(
    readonly id: string,
    private readonly pack: BuiltinVocabulary,
    private readonly index: number,
    readonly threshold: number,
  ) {
    Object.freeze(this);
  }

  get name(): string {
    return this.pack.tags[this.index]!.name;
  }

  get names(): Readonly<Record<string, string>> {
    let all = packedNames.get(this.pack);
    if (!all) {
      all = this.pack.tags.map((t) => Object.freeze<Record<string, string>>(t.nameZh === undefined ? {} : { zh: t.nameZh }));
      packedNames.set(this.pack, all);
    }
    return all[this.index]!;
  }

  get descriptions(): readonly SnapshotDescription[] {
    return builtinDescriptions(this.pack.tags[this.index]!.descriptionCount);
  }

  get builtin(): true {
    return true;
  }

  get status(): 'READY' {
    return 'READY';
  }

  get statusReason(): null {
    return null;
  }

  get descriptionSource(): 'BUILTIN' {
    return 'BUILTIN';
  }

  get usedFallback(): false {
    return false;
  }
}


const builtinDescriptionLists = new Map<number, readonly SnapshotDescription[]>();

/** `n` BUILTIN entries, one frozen list per length shared by every tag. */
export function builtinDescriptions(n: number): readonly SnapshotDescription[] {
  let list = builtinDescriptionLists.get(n);
  if (!list) {
    list = Object.freeze(Array.from({ length: n }, () => Object.freeze({ source: 'BUILTIN' as const, text: null })));
    builtinDescriptionLists.set(n, list);
  }
  return list;
}
