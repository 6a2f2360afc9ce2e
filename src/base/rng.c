/* xoshiro256** generator (public-domain algorithm by Blackman and Vigna). */
#include "base/rng.h"

#include <math.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void acv_rng_seed(acv_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&x);
}

void acv_rng_seed3(acv_rng *r, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = a;
    uint64_t h = splitmix(&x) ^ (b * 0xd1342543de82ef95ULL);
    x = h;
    h = splitmix(&x) ^ (c * 0x9e3779b97f4a7c15ULL);
    acv_rng_seed(r, h);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t acv_rng_u64(acv_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float acv_rng_uniform(acv_rng *r) { return (float)(acv_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

uint32_t acv_rng_below(acv_rng *r, uint32_t n)
{
    if (n == 0) return 0;
    return (uint32_t)(((acv_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

float acv_rng_normal(acv_rng *r)
{
    double u1 = ((acv_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (acv_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void acv_rng_shuffle(acv_rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)acv_rng_below(r, (uint32_t)(i + 1));
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}
