// A module tree in PyTorch's image: each module owns named parameters, buffers and child modules, so the
// dotted names it yields are exactly the reference implementation's state_dict keys.
import type { CounterTensor, HostTensor, ModelTensor } from './host-tensor.ts';

export abstract class Module {
  /** The reference class name, for error messages and summaries. */
  abstract readonly kind: string;
  private readonly ownParameters = new Map<string, HostTensor>();
  private readonly ownBuffers = new Map<string, ModelTensor>();
  private readonly ownChildren = new Map<string, Module>();

  protected registerParameter(name: string, tensor: HostTensor): HostTensor {
    this.ownParameters.set(name, tensor);
    return tensor;
  }

  protected registerBuffer<T extends HostTensor | CounterTensor>(name: string, tensor: T): T {
    this.ownBuffers.set(name, tensor);
    return tensor;
  }

  /** Adds (or replaces in place) a child; a new name goes last, as attribute assignment does in PyTorch. */
  protected registerModule<M extends Module>(name: string, module: M): M {
    this.ownChildren.set(name, module);
    return module;
  }

  protected removeModule(name: string): void {
    this.ownChildren.delete(name);
  }

  protected removeParameter(name: string): void {
    this.ownParameters.delete(name);
  }

  /** Child modules in registration order. */
  children(): IterableIterator<[string, Module]> {
    return this.ownChildren.entries();
  }

  /** Every module below and including this one, pre-order, with dotted names ('' for this one). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.ownChildren) yield* child.namedModules(join(prefix, name));
  }

  /** Trainable tensors, in the order PyTorch's `named_parameters()` gives. */
  *namedParameters(prefix = ''): Generator<[string, HostTensor]> {
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [name, t] of mod.ownParameters) yield [join(modName, name), t];
    }
  }

  /** Non-trainable state (BatchNorm running statistics and counters). */
  *namedBuffers(prefix = ''): Generator<[string, ModelTensor]> {
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [name, t] of mod.ownBuffers) yield [join(modName, name), t];
    }
  }

  /** Parameters and buffers in PyTorch's `state_dict()` order: per module, parameters, then buffers, then children. */
  *stateEntries(prefix = ''): Generator<[string, ModelTensor]> {
    for (const [name, t] of this.ownParameters) yield [join(prefix, name), t];
    for (const [name, t] of this.ownBuffers) yield [join(prefix, name), t];
    for (const [name, child] of this.ownChildren) yield* child.stateEntries(join(prefix, name));
  }
}

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

/** What `parameters()` counts in PyTorch: elements of trainable tensors, buffers excluded. */
export function countParameters(module: Module): number {
  let n = 0;
  for (const [, t] of module.namedParameters()) n += t.numel;
  return n;
}

/** An ordered list of modules named '0', '1', … (PyTorch's nn.Sequential / nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly kind: string = 'ModuleList';
  readonly items: M[] = [];

  constructor(items: readonly M[] = []) {
    super();
    for (const m of items) this.append(m);
  }

  append(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }

  get length(): number {
    return this.items.length;
  }
}
