/* Deterministic random numbers (xoshiro256**, seeded by splitmix64). Every random choice
 * in training derives from a seed, so that a run with the same seed and thread count is
 * bitwise reproducible and a resumed run continues exactly. */
#ifndef ACV_BASE_RNG_H
#define ACV_BASE_RNG_H

#include <stdint.h>

typedef struct acv_rng { uint64_t s[4]; } acv_rng;

void acv_rng_seed(acv_rng *r, uint64_t seed);
/* Seeds from several values mixed together (e.g. seed, epoch, sample index). */
void acv_rng_seed3(acv_rng *r, uint64_t a, uint64_t b, uint64_t c);
uint64_t acv_rng_u64(acv_rng *r);
/* Uniform in [0, 1). */
float acv_rng_uniform(acv_rng *r);
/* Uniform integer in [0, n). */
uint32_t acv_rng_below(acv_rng *r, uint32_t n);
/* Standard normal (Box-Muller). */
float acv_rng_normal(acv_rng *r);
/* Fisher-Yates shuffle of an int array. */
void acv_rng_shuffle(acv_rng *r, int *a, int n);

#endif
