/**
 * A federated client as a real network party: connects to the server over WebSocket, says hello,
 * and answers each secure-aggregation round (secagg.ts) with fresh keys. Its input for a round
 * comes from `computeInput` (DP-FedAvg: local training, clipping, quantisation and noise), which
 * runs on the client before its keys are advertised; the server never sees it unmasked.
 *
 * A message the client cannot accept (malformed, inconsistent with the protocol, a second
 * unmasking request) gets an `error` reply and the client keeps no state of that round.
 */
import WebSocket from 'ws';
import { SecAggClient, defaultThreshold, type RosterEntry, type SealedShare } from './secagg.js';
import { MaskGraph } from './secagg-graph.js';
import { PROTOCOL_VERSION } from './server.js';
import { Connection, PeerGone } from './transport.js';
import { b64, bytes, int, ints, objects, type Header, type Message } from './wire.js';

export interface RoundStart {
  round: string;
  dim: number;
  /** Shamir threshold t (of the k + 1 share holders; of n on the complete graph). */
  threshold: number;
  /** SecAgg+ neighbours per client (n − 1 or absent: complete graph). */
  neighbors?: number;
  info: Record<string, unknown>;
  payload: Uint8Array;
}

export type DiePhase = 'keys' | 'shares' | 'masked' | 'unmask';

export interface ClientOptions {
  url: string;
  maxPayload: number;
  /** How long to wait for the server between messages, ms. */
  idleTimeoutMs: number;
  /** This client's input for a round (`id` is the id the server assigned to it). */
  computeInput: (r: RoundStart, id: number) => Uint32Array | Promise<Uint32Array>;
  /** Tests and --dropout: the phase of `round` at which client `id` drops its connection abruptly instead of answering. */
  dieAt?: (id: number, round: string) => DiePhase | undefined;
  /** Tests: at this phase, stop answering (log "holding at PHASE") and wait to be killed from outside. */
  holdAt?: (id: number, round: string) => DiePhase | undefined;
  log?: (line: string) => void;
  /** Keep retrying a refused connection this long, ms (default 0). */
  connectRetryMs?: number;
}

export interface ClientResult {
  id: number;
  rounds: number;
  bytesSent: number;
  bytesReceived: number;
  /** How the client ended: 'done' (server finished), 'died' (dieAt) or the reason the connection ended. */
  ended: string;
  summary?: Record<string, unknown>;
}

function connectOnce(url: string, maxPayload: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload, perMessageDeflate: false });
    ws.once('open', () => resolve(new Connection(ws, 'server')));
    ws.once('error', (e) => reject(new PeerGone(`cannot connect to ${url}: ${e.message}`)));
  });
}

/** Connects, retrying refused connections for up to `retryMs` (a server may still be loading its data). */
export async function connect(url: string, maxPayload: number, retryMs = 0): Promise<Connection> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await connectOnce(url, maxPayload);
    } catch (e) {
      if (Date.now() >= deadline || !/ECONNREFUSED/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Runs one client until the server says done, the connection ends, or it "dies" (dieAt). */
export async function runClient(o: ClientOptions): Promise<ClientResult> {
  const conn = await connect(o.url, o.maxPayload, o.connectRetryMs ?? 0);
  await conn.send({ type: 'hello', version: PROTOCOL_VERSION });
  const welcome = await conn.next('welcome', o.idleTimeoutMs);
  const id = int(welcome.header, 'id', 1);
  const n = int(welcome.header, 'clients', 1);
  (conn as { label: string }).label = 'server';
  let state: { sa: SecAggClient; start: RoundStart; input?: Uint32Array } | undefined;
  let rounds = 0;
  const result = (ended: string, summary?: Record<string, unknown>): ClientResult => ({ id, rounds, bytesSent: conn.bytesSent, bytesReceived: conn.bytesReceived, ended, ...(summary ? { summary } : {}) });
  const dies = async (round: string, phase: DiePhase): Promise<boolean> => {
    if (o.holdAt?.(id, round) === phase) {
      o.log?.(`client ${id}: holding at ${phase} of ${round}`);
      await new Promise<never>(() => undefined);
    }
    return o.dieAt !== undefined && o.dieAt(id, round) === phase;
  };


  return new Promise<ClientResult>((resolve) => {
    let finished = false;
    const finish = (r: ClientResult) => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      resolve(r);
    };
    let lastHeard = Date.now();
    const watchdog = setInterval(() => {
      if (!conn.open) finish(result(conn.closedBecause ?? 'disconnected'));
      else if (Date.now() - lastHeard > o.idleTimeoutMs) {
        conn.close();
        finish(result(`no message from the server for ${o.idleTimeoutMs} ms`));
      }
    }, 50);
    const reply = (h: Header, p?: Uint8Array) => conn.send(h, p).catch((e: Error) => finish(result(e.message)));
    const handle = async (m: Message): Promise<void> => {
      const h = m.header;
      const round = h.round;
      if (h.type === 'done') {
        conn.close();
        finish(result('done', h as Record<string, unknown>));
        return;
      }
      if (h.type === 'abort') {
        if (state?.start.round === round) state = undefined;
        return;
      }
      if (typeof round !== 'string') throw new Error(`${h.type} without a round`);
      if (h.type === 'round') {
        const sparse = h.neighbors !== undefined;
        const kNb = sparse ? int(h, 'neighbors', 2, n - 2) : n - 1;
        const start: RoundStart = { round, dim: int(h, 'dim', 1, 1 << 28), threshold: int(h, 'threshold', 2, sparse ? kNb + 1 : n), neighbors: kNb, info: (h.info && typeof h.info === 'object' ? h.info : {}) as Record<string, unknown>, payload: m.payload };
        // A lower threshold than n − floor(n/3) (complete graph) or kNb/2 + 1 (SecAgg+) would let
        // fewer parties (or the server with fewer colluders) unmask a single client: refuse it.
        // Fewer survivors than n − floor(n/3) would void the DP protocols' noise calibration.
        const minSurvivors = sparse ? int(h, 'minSurvivors', 2, n) : start.threshold;
        if (minSurvivors < defaultThreshold(n)) throw new Error(`survivor threshold ${minSurvivors} is below ${defaultThreshold(n)} for ${n} clients; refusing the round`);
        if (sparse ? start.threshold < Math.floor(kNb / 2) + 1 : start.threshold < defaultThreshold(n)) throw new Error(`threshold ${start.threshold} is below ${sparse ? Math.floor(kNb / 2) + 1 : defaultThreshold(n)} for ${sparse ? `${kNb} neighbours` : `${n} clients`}; refusing the round`);
        let graph: MaskGraph | undefined;
        if (sparse) {
          if (kNb % 2 !== 0) throw new Error(`neighbours per client must be even, got ${kNb}`);
          graph = MaskGraph.harary(n, kNb, bytes(h.graphSeed, 'round.graphSeed', 32));
        }
        state = { sa: new SecAggClient(id, round, start.threshold, start.dim, { graph, minSurvivors }), start };
        state.input = await o.computeInput(start, id);
        if (await dies(round, 'keys')) return die();
        const k = state.sa.advertise();
        await reply({ type: 'keys', round, cPk: b64(k.cPk), sPk: b64(k.sPk) });
        return;
      }
      if (!state || state.start.round !== round) throw new Error(`${h.type} for round ${round}, which this client is not in`);
      if (h.type === 'roster') {
        const roster: RosterEntry[] = objects(h, 'roster', n).map((x, i) => ({ id: int({ type: 'roster', ...x }, 'id', 1, n), cPk: bytes(x.cPk, `roster[${i}].cPk`, 32), sPk: bytes(x.sPk, `roster[${i}].sPk`, 32) }));
        const sealed = state.sa.shareKeys(roster);
        if (await dies(round, 'shares')) return die();
        await reply({ type: 'shares', round, shares: sealed.map((s) => ({ to: s.peer, ct: b64(s.ct) })) });
        rounds++;
        return;
      }
      if (h.type === 'routed') {
        const u2 = ints(h, 'u2', n);
        const u2Count = h.u2Count === undefined ? u2.length : int(h, 'u2Count', 1, n);
        const incoming: SealedShare[] = objects(h, 'shares', n).map((x, i) => ({ peer: int({ type: 'routed', ...x }, 'from', 1, n), ct: bytes(x.ct, `shares[${i}].ct`, undefined, 4096) }));
        const y = state.sa.maskInput(state.input!, u2, incoming, u2Count);
        state.input = undefined;
        if (await dies(round, 'masked')) return die();
        await reply({ type: 'masked', round }, new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
        return;
      }
      if (h.type === 'unmask') {
        const u3 = ints(h, 'u3', n);
        const r = state.sa.unmask(u3, h.u3Count === undefined ? u3.length : int(h, 'u3Count', 1, n));
        if (await dies(round, 'unmask')) return die();
        const enc = (l: typeof r.b) => l.map((x) => ({ of: x.of, share: b64(x.share) }));
        await reply({ type: 'unmask-shares', round, b: enc(r.b), s: enc(r.s) });
        return;
      }
      throw new Error(`unexpected ${h.type}`);
    };
    const die = () => {
      o.log?.(`client ${id}: dropping out (simulated crash)`);
      conn.kill();
      finish(result('died'));
    };
    // Messages are handled one at a time, in order.
    let chain = Promise.resolve();
    conn.onMessage((m) => {
      lastHeard = Date.now();
      chain = chain.then(() =>
        handle(m)
          .then(() => {
            lastHeard = Date.now();
          })
          .catch((e: Error) => {
            o.log?.(`client ${id}: refusing ${m.header.type}: ${e.message}`);
            void conn.send({ type: 'error', round: m.header.round, message: e.message.slice(0, 300) }).catch(() => undefined);
          }),
      );
    });
  });
}
