/**
 * Conditional generator G(z, y) (spec §5) and its smaller variants. The generator never reads
 * private data: everything it learns comes through the noised aggregates, so its parameters,
 * samples and checkpoints are post-processing and may be written freely.
 *
 * Batch norm always uses batch statistics (as the reference does, even when sampling). To keep
 * samples independent of how many are drawn at once, statistics are taken over groups of
 * `bnGroup` consecutive rows ("ghost" batches of the training batch size B): sampling 60,000 images
 * in one large call gives the same distribution as sampling them B at a time.
 */
import * as tf from '@tensorflow/tfjs-core';

export type GeneratorArch = 'dcgan' | 'mlp';

export interface GeneratorConfig {
  arch: GeneratorArch;
  zDim: number;
  numClasses: number;
  height: number;
  width: number;
  /** dcgan: width of the first dense layer (spec gfc_dim 1024) and conv channels (gf_dim·2 = 128). */
  fc: number;
  channels: number;
  /** mlp: hidden layer widths. */
  hidden: number[];
  /** Rows per batch-norm group (= generator batch B). */
  bnGroup: number;
  /**
   * Scale of the one-hot label wherever it is concatenated (default 1). Under Adam every weight
   * moves by about lr per step whatever its input scale, so a gain g lets the label pathways (the
   * per-class parts of every layer) move g times faster than the shared ones: with ~100 noisy
   * steps the class-specific signal, which each class only gets from its own ~1/C of the queries,
   * otherwise stays buried under the class-shared mean image.
   */
  labelGain?: number;
  /**
   * Initial bias of the output logits (default 0: mid-grey images). A negative value starts from
   * near-black images, a data-independent prior for digit / clothing images on black backgrounds;
   * with ~100 noisy generator steps the grey-to-black drift otherwise eats a large part of them.
   */
  outputBias?: number;
}

const BN_EPS = 1e-5;
/** tfjs variable names are global: number each generator instance. */
let generatorCounter = 0;

export class ConditionalGenerator {
  readonly vars = new Map<string, tf.Variable>();

  constructor(
    readonly config: GeneratorConfig,
    initSeed: number,
  ) {
    const c = config;
    if (!Number.isInteger(c.zDim) || c.zDim < 1) throw new RangeError(`generator: z dimension must be a positive integer, got ${c.zDim}`);
    let seed = initSeed >>> 0;
    const ns = () => (seed = (seed * 1664525 + 1013904223) >>> 0);
    const C = c.numClasses;
    const lin = (name: string, i: number, o: number) => {
      this.add(`${name}.w`, tf.randomNormal([i, o], 0, 0.02, 'float32', ns()));
      this.add(`${name}.b`, tf.zeros([o]));
    };
    const bn = (name: string, n: number) => {
      this.add(`${name}.gamma`, tf.ones([n]));
      this.add(`${name}.beta`, tf.zeros([n]));
    };
    const d = c.height * c.width;
    if (c.arch === 'dcgan') {
      if (c.height % 4 !== 0 || c.width % 4 !== 0) throw new RangeError(`dcgan generator needs height and width divisible by 4, got ${c.height}×${c.width}`);
      const h4 = c.height / 4;
      const w4 = c.width / 4;
      lin('fc1', c.zDim + C, c.fc);
      bn('bn1', c.fc);
      lin('fc2', c.fc + C, h4 * w4 * c.channels);
      bn('bn2', h4 * w4 * c.channels);
      // conv2dTranspose filters are [kh, kw, outC, inC].
      this.add('dc1.w', tf.randomNormal([5, 5, c.channels, c.channels + C], 0, 0.02, 'float32', ns()));
      this.add('dc1.b', tf.zeros([c.channels]));
      bn('bn3', c.channels);
      this.add('dc2.w', tf.randomNormal([5, 5, 1, c.channels + C], 0, 0.02, 'float32', ns()));
      this.add('dc2.b', tf.fill([1], c.outputBias ?? 0));
    } else if (c.arch === 'mlp') {
      let prev = c.zDim + C;
      c.hidden.forEach((h, i) => {
        lin(`fc${i + 1}`, prev, h);
        bn(`bn${i + 1}`, h);
        prev = h + C;
      });
      lin('out', prev, d);
      if (c.outputBias) this.add('out.b', tf.fill([d], c.outputBias));
    } else {
      throw new RangeError(`unknown generator architecture "${String(c.arch)}" (dcgan|mlp)`);
    }
  }

  private add(name: string, t: tf.Tensor): void {
    this.vars.get(name)?.dispose();
    this.vars.set(name, tf.variable(t, true, `gen${++generatorCounter}_${name}`));
    t.dispose();
  }

  private v(name: string): tf.Variable {
    const x = this.vars.get(name);
    if (!x) throw new Error(`generator: missing parameter ${name}`);
    return x;
  }

  /** Batch norm with statistics per group of bnGroup rows (over rows and spatial positions). */
  private bn(x: tf.Tensor, name: string, group: number): tf.Tensor {
    const M = x.shape[0];
    const g = Math.min(group, M);
    const groups = M % g === 0 ? M / g : 1;
    const rest = x.shape.slice(1);
    const xg = tf.reshape(x, [groups, M / groups, ...rest]);
    const axes = [1, ...rest.slice(0, -1).map((_, i) => i + 2)];
    const { mean, variance } = tf.moments(xg, axes, true);
    const norm = tf.div(tf.sub(xg, mean), tf.sqrt(tf.add(variance, BN_EPS)));
    return tf.add(tf.mul(tf.reshape(norm, x.shape), this.v(`${name}.gamma`)), this.v(`${name}.beta`));
  }

  /**
   * G(z, y): z [M, zDim], y one-hot [M, C] → images [M, H·W] in (0, 1). Batch-norm statistics are
   * taken per group of `bnGroup` rows (default: the configured B); a group must mix classes, or
   * normalisation would erase the label's contribution.
   */
  apply(z: tf.Tensor2D, yOneHot: tf.Tensor2D, bnGroup = this.config.bnGroup): tf.Tensor2D {
    const c = this.config;
    const gain = c.labelGain ?? 1;
    const y = gain === 1 ? yOneHot : (tf.mul(yOneHot, gain) as tf.Tensor2D);
    const M = z.shape[0];
    const dense = (x: tf.Tensor, name: string) => tf.add(tf.matMul(x as tf.Tensor2D, this.v(`${name}.w`)), this.v(`${name}.b`));
    if (c.arch === 'dcgan') {
      const h4 = c.height / 4;
      const w4 = c.width / 4;
      const planes = (hh: number, ww: number) => tf.tile(tf.reshape(y, [M, 1, 1, c.numClasses]), [1, hh, ww, 1]);
      let x: tf.Tensor = tf.relu(this.bn(dense(tf.concat([z, y], 1), 'fc1'), 'bn1', bnGroup));
      x = tf.relu(this.bn(dense(tf.concat([x, y], 1), 'fc2'), 'bn2', bnGroup));
      x = tf.concat([tf.reshape(x, [M, h4, w4, c.channels]), planes(h4, w4)], 3);
      x = tf.add(tf.conv2dTranspose(x as tf.Tensor4D, this.v('dc1.w') as tf.Tensor4D, [M, h4 * 2, w4 * 2, c.channels], 2, 'same'), this.v('dc1.b'));
      x = tf.relu(this.bn(x, 'bn3', bnGroup));
      x = tf.concat([x, planes(h4 * 2, w4 * 2)], 3);
      x = tf.add(tf.conv2dTranspose(x as tf.Tensor4D, this.v('dc2.w') as tf.Tensor4D, [M, c.height, c.width, 1], 2, 'same'), this.v('dc2.b'));
      return tf.reshape(tf.sigmoid(x), [M, c.height * c.width]);
    }
    let x: tf.Tensor = tf.concat([z, y], 1);
    c.hidden.forEach((_, i) => {
      x = tf.concat([tf.relu(this.bn(dense(x, `fc${i + 1}`), `bn${i + 1}`, bnGroup)), y], 1);
    });
    return tf.sigmoid(dense(x, 'out')) as tf.Tensor2D;
  }

  numParams(): number {
    let n = 0;
    for (const v of this.vars.values()) n += v.size;
    return n;
  }

  /** Parameters as (name, shape, values), for save(). */
  snapshot(): { name: string; shape: number[]; values: Float32Array }[] {
    return [...this.vars.entries()].map(([name, v]) => ({ name, shape: v.shape, values: v.dataSync() as Float32Array }));
  }

  restore(params: { name: string; shape: number[]; values: Float32Array }[]): void {
    for (const p of params) {
      const v = this.vars.get(p.name);
      if (!v) throw new Error(`generator checkpoint has unknown parameter ${p.name}`);
      if (v.shape.join('x') !== p.shape.join('x')) throw new Error(`generator checkpoint: ${p.name} has shape ${p.shape.join('×')}, model expects ${v.shape.join('×')}`);
      tf.tidy(() => v.assign(tf.tensor(p.values, p.shape)));
    }
    if (params.length !== this.vars.size) throw new Error(`generator checkpoint has ${params.length} parameters, model has ${this.vars.size}`);
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}
