/*
 * A complete consumer in C over libsring (sring/sring.h): configure a device,
 * verify every sample in place for a few seconds, stop, drain, and check
 * that every sample was delivered or counted as lost.
 *   cc -std=c11 consume_from_c.c $(pkg-config --cflags --libs libsring)
 *   ./a.out /dev/sring0 [seconds [format [channels]]]
 * format: u8, s8, u16 (the default), s16, s32, f32, cs16 or cf32; channels:
 * 1 (the default) to 256, interleaved in each frame.
 * Exit status: 0 all accounted for and verified, 1 not, 2 errors.
 */
#define _POSIX_C_SOURCE 199309L	/* clock_gettime() under -std=c11 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sring/sring.h"
#include "sring/sring_pattern.h"

struct check {
	uint32_t seed;
	uint64_t corrupted;
};

/*
 * Every value of the block against the pattern (sring_pattern.h), compared
 * as stored: value v of the block (frame v / channels, channel v %
 * channels; I then Q for a complex format) is pattern element
 * first_sample * channels * components + v. Code that computes reads the
 * payload as its type instead: an int16_t I and Q per sample of a cs16
 * block, a float per sample of an f32 one (struct sring_block says which).
 */
static int verify_block(const struct sring_block *block, void *user)
{
	struct check *check = user;
	uint32_t components = sring_format_components(block->format);
	uint32_t value_bytes = block->bits_per_sample / components / 8;
	uint64_t values = block->frames * block->channels * components;
	uint64_t first = block->header.first_sample * block->channels * components;
	const unsigned char *payload = block->payload;
	uint64_t i;

	for (i = 0; i < values; i++) {
		uint32_t want = sring_pattern_value(sring_pattern_sample(first + i, check->seed),
						    block->format);
		uint32_t got = 0;
		uint16_t got16;

		switch (value_bytes) {
		case 1:
			got = payload[i];
			break;
		case 2:
			memcpy(&got16, payload + 2 * i, 2);
			got = got16;
			break;
		default:
			memcpy(&got, payload + 4 * i, 4);
			break;
		}
		if (got != want)
			check->corrupted++;
	}
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
	const char *format_name = argc > 3 ? argv[3] : "u16";
	long channels = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
	struct sring_config config = {
		.sample_rate = 20000000, .block_bytes = 8192,
		.overrun_policy = SRING_OVERRUN_DROP_NEWEST,
		.pattern_seed = 1, .flush_timeout_us = 2000,
	};
	struct check check = { .seed = config.pattern_seed };
	struct sring_consumer *ring;
	struct sring_counters counters;
	double stop_at;
	int stopped = 0;

	if (sring_parse_format(format_name, &config.sample_format) < 0 ||
	    !sring_format_bits(config.sample_format)) {
		fprintf(stderr, "format: u8, s8, u16, s16, s32, f32, cs16 or cf32, not '%s'\n",
			format_name);
		return 2;
	}
	if (channels < 1 || channels > SRING_MAX_CHANNELS) {
		fprintf(stderr, "channels: 1 to %u\n", SRING_MAX_CHANNELS);
		return 2;
	}
	config.channels = (uint32_t)channels;
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
		int64_t n = sring_consume_blocks(ring, verify_block, &check, SRING_ALL);

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
	printf("%llu frames of %s x %ld, %llu values corrupted, %llu missing, %llu dropped: %s\n",
	       (unsigned long long)counters.samples, format_name, channels,
	       (unsigned long long)check.corrupted,
	       (unsigned long long)counters.missing_samples,
	       (unsigned long long)counters.samples_dropped,
	       counters.exact && !check.corrupted ? "every sample accounted for" : "FAIL");
	return counters.samples && counters.exact && !check.corrupted ? 0 : 1;
}
