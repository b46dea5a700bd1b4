/** How long and how hard each measurement runs: the full run (issue #8) or `--quick` (CI smoke). */
export interface BenchPlan {
  quick: boolean;
  /** Unmeasured load on every target before the first measurement (JIT, pools, connections). */
  warmupS: number;
  latency: { overallRate: number; durationS: number; connections: number };
  /**
   * `rounds` rounds of `roundS` seconds per target, the targets' order reversed every other round
   * (direct, bare, keyrack, then keyrack, bare, direct), so a box that speeds up or slows down
   * during the run weighs on every target alike.
   */
  throughput: { connections: number; rounds: number; roundS: number };
  ttft: { samples: number; chunks: number };
  streams: { count: number; chunks: number; chunkDelayMs: number };
  pool: { durationMs: number; redisInFlight: number; redisBenchmarkRequests: number };
  /** How long the gateway rests before its settled idle RSS is read (V8's memory reducer starts after ~8 s). */
  idleSettleMs: number;
}

export const FULL_PLAN: BenchPlan = {
  quick: false,
  warmupS: 3,
  latency: { overallRate: 500, durationS: 20, connections: 10 },
  throughput: { connections: 32, rounds: 4, roundS: 4 },
  ttft: { samples: 300, chunks: 20 },
  // 200 chunks 50 ms apart: every stream lasts ~10 s, far longer than it takes to open them all.
  streams: { count: 1_000, chunks: 200, chunkDelayMs: 50 },
  pool: { durationMs: 2_000, redisInFlight: 256, redisBenchmarkRequests: 200_000 },
  idleSettleMs: 20_000,
};

export const QUICK_PLAN: BenchPlan = {
  quick: true,
  warmupS: 0.3,
  latency: { overallRate: 100, durationS: 1, connections: 4 },
  throughput: { connections: 8, rounds: 1, roundS: 1 },
  ttft: { samples: 10, chunks: 5 },
  streams: { count: 50, chunks: 20, chunkDelayMs: 10 },
  pool: { durationMs: 250, redisInFlight: 32, redisBenchmarkRequests: 5_000 },
  idleSettleMs: 500,
};

/** The targets of issue #8, on a 2-core machine with everything on one box. */
export const TARGETS = {
  addedLatencyP50Ms: 1,
  addedLatencyP99Ms: 5,
  throughputVsBare: 0.5,
  addedTtftP50Ms: 2,
  rssPerStreamBytes: 64 * 1024,
  eventLoopP99Ms: 50,
  memoryPicksPerS: 1_000_000,
  redisPicksVsCeiling: 0.4,
  /**
   * Picks on a local 3-master Redis Cluster, pools spread one per master, against one Redis
   * (issue 22). On 2 cores the masters and the picker share the cores one Redis had (no gain to
   * expect): what a cluster may cost.
   */
  clusterPicksVsSingleNode: 0.8,
  /** "100 MB", read as SI megabytes (95.4 MiB): the stricter reading. */
  idleRssBytes: 100 * 1000 * 1000,
} as const;
