/**
 * The aggregation server as a real network party: a WebSocket server on loopback (or any host)
 * that admits a fixed number of clients, then runs secure-aggregation rounds (secagg.ts) with them.
 *
 * Each phase waits until every client still in the round has answered or the phase timeout passes;
 * a client that disconnects (crash, kill -9), times out, sends an oversized frame (ws closes it with
 * 1009) or a malformed/invalid message (closed with a reason) is a dropout for the rest of the
 * round. A round with fewer than t answers in any phase is aborted and reveals nothing.
 * The hook `beforeUnmask(u3)` runs after the survivor set is fixed and BEFORE any unmasking share
 * is requested: DP-FedAvg records the round's release in the ledger there.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { SecAggError, SecAggServer, defaultThreshold, type AdvertisedKeys, type RosterEntry, type SealedShare, type UnmaskResponse } from './secagg.js';
import { DEFAULT_THREAT, MaskGraph, secAggPlusThreshold } from './secagg-graph.js';
import { SHARE_BYTES } from './shamir.js';
import { Connection, PeerGone } from './transport.js';
import { WireError, b64, bytes, int, objects, u32Payload, type Message } from './wire.js';

export const PROTOCOL_VERSION = 1;

export interface FedServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Largest WebSocket message accepted, bytes (ws maxPayload). */
  maxPayload: number;
  /** Deadline of each protocol phase, ms. */
  phaseTimeoutMs: number;
  log?: (line: string) => void;
}

export interface RoundOptions {
  dim: number;
  /**
   * Fewest clients any phase may continue with (default n − floor(n/3) of the admitted clients);
   * on the complete graph also the Shamir threshold. The DP protocols calibrate noise to it.
   */
  threshold?: number;
  /** SecAgg+: neighbours per client (even, < n − 1); undefined or >= n − 1 = complete graph. */
  neighbors?: number;
  /** Public round information for the clients (e.g. learning rate), JSON. */
  info?: Record<string, unknown>;
  /** Bytes broadcast with the round start (e.g. the current model). */
  payload?: Uint8Array;
  /** Runs once U3 is fixed, before unmasking; throwing aborts the round without unmasking. */
  beforeUnmask?: (u3: number[]) => void | Promise<void>;
}

export interface RoundResult {
  round: string;
  sum: Uint32Array;
  /** Fewest survivors the round could finish with. */
  threshold: number;
  /** Neighbours per client (n − 1: complete graph). */
  neighbors: number;
  /** Shares needed per secret (t of the k + 1 holders). */
  shamirThreshold: number;
  u1: number[];
  u2: number[];
  u3: number[];
  u5: number[];
  /** Why each client that left the round did so. */
  dropouts: { id: number; phase: string; reason: string }[];
}

export class FedServer {
  readonly clients = new Map<number, Connection>();
  private readonly pending: Connection[] = [];
  private nextId = 1;
  private admitting = true;

  private constructor(
    private readonly wss: WebSocketServer,
    readonly opts: FedServerOptions,
  ) {}

  static listen(opts: FedServerOptions): Promise<FedServer> {
    return new Promise((resolve, reject) => {
      const wss = new WebSocketServer({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, maxPayload: opts.maxPayload, perMessageDeflate: false });
      const srv = new FedServer(wss, opts);
      wss.once('error', reject);
      wss.once('listening', () => resolve(srv));
      wss.on('connection', (ws: WebSocket) => srv.admit(ws));
    });
  }

  get port(): number {
    return (this.wss.address() as AddressInfo).port;
  }
  get url(): string {
    return `ws://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  private admit(ws: WebSocket): void {
    const conn = new Connection(ws, 'a client');
    if (!this.admitting) {
      conn.fail('the federation is full / already started');
      return;
    }
    this.pending.push(conn);
  }

  /** Waits until `n` clients said hello (ids 1..n in order of arrival), then stops admitting. */
  async waitForClients(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.clients.size < n) {
      const conn = this.pending.shift();
      if (!conn) {
        if (Date.now() > deadline) throw new PeerGone(`only ${this.clients.size} of ${n} clients connected within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      try {
        const hello = await conn.next('hello', Math.max(1, deadline - Date.now()));
        if (int(hello.header, 'version', 0) !== PROTOCOL_VERSION) throw new WireError(`protocol version ${String(hello.header.version)} is not ${PROTOCOL_VERSION}`);
        const id = this.nextId++;
        (conn as { label: string }).label = `client ${id}`;
        this.clients.set(id, conn);
        await conn.send({ type: 'welcome', id, clients: n });
      } catch (e) {
        if (e instanceof WireError) conn.fail(e.message);
        this.opts.log?.(`refused a connection: ${(e as Error).message}`);
      }
    }
    this.admitting = false;
    for (const c of this.pending.splice(0)) c.fail('the federation is full');
  }

  get connectedIds(): number[] {
    return [...this.clients.entries()].filter(([, c]) => c.open).map(([id]) => id);
  }

  /** One secure-aggregation round with the connected clients. */
  async aggregate(round: string, o: RoundOptions): Promise<RoundResult> {
    const ids = this.connectedIds;
    const n = ids.length;
    const nAll = this.clients.size;
    const minSurvivors = o.threshold ?? defaultThreshold(nAll);
    // SecAgg+: a public random Harary graph over ids 1..nAll, drawn by the server per round.
    const graphSeed = o.neighbors !== undefined && o.neighbors < nAll - 1 ? new Uint8Array(randomBytes(32)) : undefined;
    const graph = graphSeed ? MaskGraph.harary(nAll, o.neighbors!, graphSeed) : undefined;
    const t = graph ? secAggPlusThreshold(nAll, graph.k, DEFAULT_THREAT) : minSurvivors;
    const sa = new SecAggServer(round, t, o.dim, { graph, minSurvivors });
    const k = graph ? graph.k : nAll - 1;
    const dropouts: RoundResult['dropouts'] = [];
    const T = this.opts.phaseTimeoutMs;
    const maxIds = this.clients.size;
    /** Sends to each of `to`, then collects one `type` answer from each; failures are dropouts. */
    const phase = async (name: string, to: number[], send: (id: number) => [Record<string, unknown>, Uint8Array?], type: Message['header']['type'], accept: (id: number, m: Message) => void): Promise<number[]> => {
      const ok: number[] = [];
      await Promise.all(
        to.map(async (id) => {
          const c = this.clients.get(id)!;
          try {
            const [h, p] = send(id);
            await c.send({ type: h.type as Message['header']['type'], round, ...h }, p);
            const m = await c.next(type, T, round);
            accept(id, m);
            ok.push(id);
          } catch (e) {
            const err = e as Error;
            // A bad message is a protocol violation: close that connection, with the reason.
            if (err instanceof WireError || err instanceof SecAggError) c.fail(`${c.label}: ${err.message}`);
            dropouts.push({ id, phase: name, reason: err.message });
          }
        }),
      );
      return ok.sort((a, b) => a - b);
    };
    if (n < minSurvivors) throw new SecAggError(`round ${round}: only ${n} clients connected, fewer than the threshold ${minSurvivors}`);
    const graphInfo = graph ? { neighbors: graph.k, graphSeed: b64(graphSeed!), minSurvivors } : {};
    try {
      const got1 = await phase('keys', ids, () => [{ type: 'round', dim: o.dim, threshold: t, ...graphInfo, info: o.info ?? {} }, o.payload], 'keys', (id, m) => {
        const k: AdvertisedKeys = { cPk: bytes(m.header.cPk, 'keys.cPk', 32), sPk: bytes(m.header.sPk, 'keys.sPk', 32) };
        sa.receiveKeys(id, k);
      });
      void got1;
      const roster = sa.closeKeys();
      const wire = (l: RosterEntry[]) => l.map((r) => ({ id: r.id, cPk: b64(r.cPk), sPk: b64(r.sPk) }));
      const fullRoster = graph ? undefined : wire(roster);
      await phase('shares', roster.map((r) => r.id), (id) => [{ type: 'roster', roster: fullRoster ?? wire(sa.rosterFor(id)) }], 'shares', (id, m) => {
        const list = objects(m.header, 'shares', maxIds).map((x, i): SealedShare => ({ peer: int({ type: 'shares', ...x }, 'to', 1, maxIds), ct: bytes(x.ct, `shares[${i}].ct`, undefined, 4096) }));
        sa.receiveShares(id, list);
      });
      const { u2, routed } = sa.closeShares();
      await phase('masked', u2, (id) => [{ type: 'routed', u2: graph ? sa.u2For(id) : u2, ...(graph ? { u2Count: u2.length } : {}), shares: routed.get(id)!.map((s) => ({ from: s.peer, ct: b64(s.ct) })) }], 'masked', (id, m) => sa.receiveMasked(id, new Uint32Array(u32Payload(m, o.dim))));
      const u3 = sa.closeMasked();
      await o.beforeUnmask?.(u3);
      await phase('unmask', u3, (id) => [{ type: 'unmask', u3: graph ? sa.u3For(id) : u3, ...(graph ? { u3Count: u3.length } : {}) }], 'unmask-shares', (id, m) => {
        const read = (key: string): UnmaskResponse['b'] => objects(m.header, key, maxIds).map((x, i) => ({ of: int({ type: 'unmask-shares', ...x }, 'of', 1, maxIds), share: bytes(x.share, `${key}[${i}].share`, SHARE_BYTES) }));
        sa.receiveUnmask(id, { b: read('b'), s: read('s') });
      });
      const r = sa.finish();
      return { round, sum: r.sum, threshold: minSurvivors, neighbors: k, shamirThreshold: t, u1: r.u1, u2: r.u2, u3: r.u3, u5: r.u5, dropouts };
    } catch (e) {
      for (const id of this.connectedIds) void this.clients.get(id)!.send({ type: 'abort', round, reason: (e as Error).message.slice(0, 300) }).catch(() => undefined);
      throw e;
    }
  }

  /** Bytes each client sent (over its whole connection) and the server sent to it. */
  traffic(): { id: number; clientSent: number; serverSent: number }[] {
    return [...this.clients.entries()].map(([id, c]) => ({ id, clientSent: c.bytesReceived, serverSent: c.bytesSent }));
  }

  /** Tells every client the federation is over (with a public summary), then closes. */
  async close(summary: Record<string, unknown> = {}): Promise<void> {
    await Promise.all(this.connectedIds.map((id) => this.clients.get(id)!.send({ type: 'done', ...summary }).catch(() => undefined)));
    for (const c of this.clients.values()) c.close();
    for (const c of this.pending) c.close();
    await new Promise<void>((resolve) => {
      for (const ws of this.wss.clients) ws.terminate();
      this.wss.close(() => resolve());
    });
  }
}


