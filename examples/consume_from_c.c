/*
 * A complete consumer in C over libsring (sring/sring.h): configure a device,
 * verify every sample in place for a few seconds, stop, drain, and check
 * that every sample was delivered or counted as lost.
 *   cc -std=c11 consume_from_c.c $(pkg-config --cflags --libs libsring)
 *   ./a.out /dev/sring0 [seconds]
 * Exit status: 0 all accounted for and verified, 1 not, 2 errors.
 */
#define _POSIX_C_SOURCE 199309L	/* clock_gettime() under -std=c11 */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sring/sring.h"
#include "sring/sring_pattern.h"

struct check {
	uint32_t seed;
	uint64_t corrupted;
};

static int verify_block(const struct sring_block_header *header,
			const uint16_t *samples, uint64_t lost_before, void *user)
{
	struct check *check = user;
	uint32_t i;

	(void)lost_before;	/* sring_get_counters() adds the losses up */
	for (i = 0; i < header->sample_count; i++)
		if (samples[i] != sring_pattern_sample(header->first_sample + i, check->seed))
			check->corrupted++;
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/dev/sring0";
	double seconds = argc > 2 ? atof(argv[2]) : 3;
	struct sring_config config = {
		.sample_rate = 20000000, .block_bytes = 8192,
		.overrun_policy = SRING_OVERRUN_DROP_NEWEST,
		.sample_format = SRING_FMT_U16, .pattern_seed = 1,
		.flush_timeout_us = 2000,
	};
	struct check check = { .seed = config.pattern_seed };
	struct sring_consumer *ring;
	struct sring_counters counters;
	double stop_at;
	int stopped = 0;

	if (sring_open(path, &ring) < 0) {
		fprintf(stderr, "%s\n", sring_last_error(NULL));
		return 2;
	}
	if (sring_stop(ring) < 0 || sring_reset(ring) < 0 ||
	    sring_configure(ring, &config) < 0 || sring_start(ring) < 0) {
		fprintf(stderr, "%s\n", sring_last_error(ring));
		sring_close(ring);
		return 2;
	}
	stop_at = now() + seconds;
	while (!sring_end_of_stream(ring)) {
		int64_t n = sring_consume(ring, verify_block, &check, SRING_ALL);

		if (n < 0) {
			fprintf(stderr, "%s\n", sring_last_error(ring));
			sring_close(ring);
			return 2;
		}
		if (!stopped && now() >= stop_at) {
			sring_stop(ring);
			stopped = 1;
		}
		if (n == 0)
			sring_wait(ring, 50 * 1000 * 1000);
	}
	sring_get_counters(ring, &counters);
	sring_close(ring);
	printf("%llu samples, %llu corrupted, %llu missing, %llu dropped: %s\n",
	       (unsigned long long)counters.samples,
	       (unsigned long long)check.corrupted,
	       (unsigned long long)counters.missing_samples,
	       (unsigned long long)counters.samples_dropped,
	       counters.exact && !check.corrupted ? "every sample accounted for" : "FAIL");
	return counters.samples && counters.exact && !check.corrupted ? 0 : 1;
}
