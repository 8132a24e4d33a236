/* SPDX-License-Identifier: MIT */
/*
 * concurrency.h - the multi-threaded store/load driver shared by
 * test_concurrency (host tier) and test_disk_concurrency (with a disk tier).
 */
#ifndef KV_TEST_CONCURRENCY_H
#define KV_TEST_CONCURRENCY_H

#include "harness.h"

#define T_CONC_THREADS 4
#define T_CONC_PER_THREAD 16  /* engine blocks each thread owns */

struct t_conc_result {
	uint64_t stored;          /* blocks stores reported done */
	uint64_t loaded;          /* blocks loaded, every byte checked */
	uint64_t partial_loads;   /* loads cut short by a miss */
};

/*
 * Run T_CONC_THREADS threads for `seconds`, each storing and loading random
 * batches (1-8) of names[0..universe) through kv into its own range of eng's
 * blocks (eng needs T_CONC_THREADS * T_CONC_PER_THREAD blocks). Completions
 * are reaped by whichever thread waits and routed to their owner, so
 * exactly-once delivery is checked too. Exits on any wrong byte.
 */
struct t_conc_result t_conc_run(struct kv *kv, struct t_engine *eng,
				const kv_hash *names, uint32_t universe, double seconds);

#endif /* KV_TEST_CONCURRENCY_H */
