/**
 * SecAgg+ (Bell et al. CCS 2020): secure aggregation on a public random k-regular (permuted Harary)
 * graph. The graph itself, the parameter choice against its stated bounds, mask cancellation with
 * 0 / 10 / 30 % dropouts at every phase and shuffled orders, what a dropped user's neighbours
 * reveal, a server transcript check, and one small round over real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { MaskGraph, defaultNeighbors, logHypergeomTail, secAggPlusBounds, secAggPlusParams, secAggPlusThreshold } from '../src/federated/secagg-graph.js';
import { SecAggClient, SecAggError, SecAggServer, defaultThreshold, type UnmaskResponse } from '../src/federated/secagg.js';
import { simulateSecAgg } from '../src/federated/simulate-secagg.js';
import { secureRandom } from '../src/privacy/index.js';

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
function pick(ids: number[], k: number): Set<number> {
  return new Set(shuffle([...ids]).slice(0, k));
}

test('graph: permuted Harary graph is k-regular, symmetric, public (same seed, same graph)', () => {
  const n = 50;
  const seed = new Uint8Array(randomBytes(32));
  const g = MaskGraph.harary(n, 8, seed);
  const again = MaskGraph.harary(n, 8, seed);
  const other = MaskGraph.harary(n, 8, new Uint8Array(randomBytes(32)));
  let differs = false;
  for (let u = 1; u <= n; u++) {
    const nb = g.neighbours(u);
    assert.equal(nb.length, 8);
    assert.ok(!nb.includes(u));
    for (const v of nb) assert.ok(g.adjacent(v, u) && g.neighbours(v).includes(u), `${u}-${v} not symmetric`);
    assert.deepEqual(again.neighbours(u), nb);
    if (other.neighbours(u).join() !== nb.join()) differs = true;
    assert.deepEqual(g.holders(u), [...nb, u].sort((a, b) => a - b));
  }
  assert.ok(differs, 'a different seed should give a different graph');
  assert.ok(MaskGraph.harary(n, 50, seed).isComplete);
  assert.equal(MaskGraph.complete(5).neighbours(3).join(), '1,2,4,5');
  assert.throws(() => MaskGraph.harary(n, 7, seed), /even/);
});

test('parameters: hypergeometric tail reference and the SecAgg+ choice meets its own bounds', () => {
  // P[X >= 2], X ~ Hyp(N=10, K=3, k=4): (C(3,2)C(7,2) + C(3,3)C(7,1)) / C(10,4) = (63 + 7) / 210.
  assert.ok(Math.abs(Math.exp(logHypergeomTail(10, 3, 4, 2)) - 70 / 210) < 1e-12);
  assert.ok(Math.abs(Math.exp(logHypergeomTail(10, 3, 4, 0)) - 1) < 1e-12);
  const p = secAggPlusParams(1000)!;
  assert.equal(p.k % 2, 0);
  assert.ok(p.t > p.k / 2 && p.t <= p.k + 1);
  assert.ok(p.log2Insecure <= -40 && p.log2Incomplete <= -20, JSON.stringify(p));
  // minimal: two fewer neighbours miss a bound for every admissible t
  for (let t = (p.k - 2) / 2 + 1; t <= p.k - 1; t++) {
    const b = secAggPlusBounds(1000, p.k - 2, t);
    assert.ok(b.log2Insecure > -40 || b.log2Incomplete > -20);
  }
  assert.ok(p.k < 300, `k = ${p.k} at n = 1000 should be far below n`);
  assert.equal(defaultNeighbors(100), 99, 'complete graph while SecAgg+ k > n/2');
  assert.equal(defaultNeighbors(1000), p.k);
  assert.ok(secAggPlusThreshold(1000, p.k) <= p.t);
});

/** One SecAgg+ round as pure state machines; dropouts after each phase, shuffled orders. */
function sparseRound(n: number, k: number, dim: number, drops: { beforeShares: number; beforeMasked: number; beforeUnmask: number }) {
  const graph = MaskGraph.harary(n, k, new Uint8Array(randomBytes(32)));
  const t = secAggPlusThreshold(n, k);
  const minSurvivors = Math.max(2, n - drops.beforeShares - drops.beforeMasked - drops.beforeUnmask);
  const round = `p${randomInt(1e9)}`;
  const server = new SecAggServer(round, t, dim, { graph, minSurvivors });
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, round, t, dim, { graph, minSurvivors })]));
  const inputs = new Map(ids.map((id) => [id, Uint32Array.from({ length: dim }, () => randomInt(2 ** 32 - 1))]));
  for (const id of shuffle([...ids])) server.receiveKeys(id, clients.get(id)!.advertise());
  server.closeKeys();
  const dropA = pick(ids, drops.beforeShares);
  const alive1 = ids.filter((i) => !dropA.has(i));
  for (const id of shuffle([...alive1])) server.receiveShares(id, clients.get(id)!.shareKeys(server.rosterFor(id)));
  const { u2, routed } = server.closeShares();
  const dropB = pick(alive1, drops.beforeMasked);
  const alive2 = alive1.filter((i) => !dropB.has(i));
  for (const id of shuffle([...alive2])) server.receiveMasked(id, clients.get(id)!.maskInput(inputs.get(id)!, server.u2For(id), shuffle([...routed.get(id)!]), u2.length));
  const u3 = server.closeMasked();
  const dropC = pick(alive2, drops.beforeUnmask);
  const answers = new Map<number, UnmaskResponse>();
  for (const id of shuffle(alive2.filter((i) => !dropC.has(i)))) {
    const r = clients.get(id)!.unmask(server.u3For(id), u3.length);
    answers.set(id, r);
    server.receiveUnmask(id, r);
  }
  // Whether every secret the server needs has t answering holders (else it must abort).
  const u5 = new Set(answers.keys());
  const u3Set = new Set(u3);
  const enough = (v: number) => graph.holders(v).filter((w) => u5.has(w)).length >= t;
  const feasible = u3.every(enough) && u2.filter((v) => !u3Set.has(v) && graph.neighbours(v).some((u) => u3Set.has(u))).every(enough);
  const plain = new Uint32Array(dim);
  for (const id of u3) for (let i = 0; i < dim; i++) plain[i] += inputs.get(id)![i]!;
  return { server, plain, u2, u3, alive2, answers, graph, feasible, t };
}

test('SecAgg+ mask cancellation: sum correct with 0 %, 10 % and 30 % dropouts (random phases and orders)', () => {
  // n = 30. 0 and 10 % (3 dropouts) with k = 10, t = 6 of 11 holders: every secret keeps >= 8
  // holders, so every round must finish. 30 % (9 dropouts) with k = 16, t = 9 of 17: a round lacks
  // holders for some secret with probability ≈ 7 % (then it must abort with the named error,
  // never give a wrong sum); at least 2 of 4 must finish (fails by chance with P ≈ 0.1 %).
  const n = 30;
  for (const [rate, k] of [[0, 10], [0.1, 10], [0.3, 16]] as const) {
    let finished = 0;
    for (let trial = 0; trial < 4; trial++) {
      const total = Math.round(rate * n);
      const a = randomInt(total + 1);
      const b = randomInt(total - a + 1);
      const { server, plain, u3, alive2, feasible } = sparseRound(n, k, 5 + randomInt(30), { beforeShares: a, beforeMasked: b, beforeUnmask: total - a - b });
      assert.deepEqual(u3, [...alive2].sort((x, y) => x - y));
      if (feasible) {
        assert.deepEqual(server.finish().sum, plain, `rate ${rate}, drops ${a},${b},${total - a - b}`);
        finished++;
      } else assert.throws(() => server.finish(), (e: Error) => e instanceof SecAggError && /holders of client \d+/.test(e.message));
    }
    assert.ok(rate < 0.3 ? finished === 4 : finished >= 2, `rate ${rate}: only ${finished} of 4 rounds had enough holders`);
  }
});

test('SecAgg+: a dropped user\'s neighbours reveal only its key share, survivors\' only self-mask shares, non-neighbours nothing', () => {
  const n = 24;
  const { server, plain, u2, u3, answers, graph, feasible } = sparseRound(n, 6, 8, { beforeShares: 0, beforeMasked: 3, beforeUnmask: 0 });
  const alive = new Set(u3);
  const dropped = u2.filter((v) => !alive.has(v));
  assert.equal(dropped.length, 3);
  for (const [w, r] of answers) {
    for (const x of r.b) assert.ok(alive.has(x.of) && graph.holders(x.of).includes(w), `client ${w} revealed a self-mask share of ${x.of}`);
    for (const x of r.s) assert.ok(!alive.has(x.of) && graph.holders(x.of).includes(w), `client ${w} revealed a key share of ${x.of}`);
    for (const v of dropped) assert.ok(!r.b.some((x) => x.of === v), `self-mask share of dropped ${v} revealed`);
  }
  if (feasible) assert.deepEqual(server.finish().sum, plain);
  // A roster naming a non-neighbour is refused (the graph is public: the server cannot widen it).
  const seed = new Uint8Array(randomBytes(32));
  const g = MaskGraph.harary(10, 2, seed);
  const t = 2;
  const s = new SecAggServer('q', t, 2, { graph: g, minSurvivors: 2 });
  const cs = Array.from({ length: 10 }, (_, i) => new SecAggClient(i + 1, 'q', t, 2, { graph: g, minSurvivors: 2 }));
  cs.forEach((c) => s.receiveKeys(c.id, c.advertise()));
  const all = s.closeKeys();
  const stranger = all.find((r) => r.id !== 1 && !g.adjacent(1, r.id))!;
  assert.throws(() => cs[0]!.shareKeys([...s.rosterFor(1), stranger]), /not a neighbour/);
  assert.equal(s.rosterFor(1).length, 3);
});

test('SecAgg+ server transcript: a masked input is uniform whatever the input; the counts are checked', () => {
  const dim = 4096;
  for (const value of [0, 2 ** 31]) {
    const n = 12;
    const graph = MaskGraph.harary(n, 4, new Uint8Array(randomBytes(32)));
    const t = 3;
    const minSurvivors = defaultThreshold(n);
    const server = new SecAggServer('z', t, dim, { graph, minSurvivors });
    const cs = Array.from({ length: n }, (_, i) => new SecAggClient(i + 1, 'z', t, dim, { graph, minSurvivors }));
    cs.forEach((c) => server.receiveKeys(c.id, c.advertise()));
    server.closeKeys();
    cs.forEach((c) => server.receiveShares(c.id, c.shareKeys(server.rosterFor(c.id))));
    const { u2, routed } = server.closeShares();
    const y = cs[0]!.maskInput(new Uint32Array(dim).fill(value), server.u2For(1), routed.get(1)!, u2.length);
    const counts = new Array<number>(16).fill(0);
    for (const w of y) counts[w >>> 28]!++;
    const e = dim / 16;
    const chi2 = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    assert.ok(chi2 < 56.6, `masked words not uniform: chi2 = ${chi2}`); // P(X > 56.6) = 1e-6, 15 dof (a broken mask gives thousands)
    // Told fewer key-sharers than the survivor threshold: refuse to send a masked input.
    assert.throws(() => cs[1]!.maskInput(new Uint32Array(dim), server.u2For(2), routed.get(2)!, minSurvivors - 1), /fewer than the threshold/);
  }
});

test('SecAgg+ over real sockets: 12 clients, 6 neighbours, 25 % dropouts', async () => {
  // t = 4 of 7 holders: 3 dropouts leave every needed secret >= 4 answering holders, whatever the graph.
  const r = await simulateSecAgg({ clients: 12, dim: 64, dropout: 0.25, neighbors: 6, rng: secureRandom(), phaseTimeoutMs: 20_000 });
  assert.equal(r.neighbors, 6);
  assert.equal(r.shamirThreshold, 4);
  assert.equal(r.survivors, 9);
  assert.equal(r.sumCorrect, true);
});
