/**
 * Layer registry: spec type name → builder (like Opacus' `register_grad_sampler` or tfjs kernels
 * registered by name). Each layer file registers its kind when it is imported; `buildModel`
 * (spec.ts) looks the spec's `type` up here. Type names are matched case-insensitively.
 */
import type { LayerSpec, Module } from '../module.js';

/** A built module and its output shape (without the batch axis). */
export interface BuiltLayer {
  module: Module;
  outShape: number[];
}

export interface LayerBuildContext {
  /** Input shape without the batch axis. */
  inShape: number[];
  /** Size of the last input axis (features or channels). */
  last: number;
  /** Builds a nested spec for an input of `inShape` (for containers). */
  build(spec: LayerSpec, inShape: number[]): BuiltLayer;
}

export interface LayerKind {
  /** Spec type names in lower case: the canonical name first, then aliases. */
  types: readonly string[];
  /**
   * Builds the module for `spec`. Return the module alone to have its output shape inferred by a
   * one-example dry run, or a BuiltLayer when the shape is already known (containers).
   */
  build(spec: LayerSpec, ctx: LayerBuildContext): Module | BuiltLayer;
  /** Dtype of the dry-run input (default float32; 'int32' for id inputs). */
  inputDtype?: 'float32' | 'int32';
}

const kinds = new Map<string, LayerKind>();

/** Registers a layer kind under each of its type names; a name taken by another kind is an error. */
export function registerLayer(kind: LayerKind): void {
  for (const t of kind.types) {
    const key = t.toLowerCase();
    const prev = kinds.get(key);
    if (prev && prev !== kind) throw new Error(`registerLayer: layer type "${key}" is already registered`);
    kinds.set(key, kind);
  }
}

/** The kind registered for a spec type name (case-insensitive), if any. */
export function layerKind(type: string): LayerKind | undefined {
  return kinds.get(type.toLowerCase());
}

/** Every registered type name (aliases included), sorted. */
export function registeredLayerTypes(): string[] {
  return [...kinds.keys()].sort();
}
