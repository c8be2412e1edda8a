/* The ABI header is plain C: a C program can map a ring with it alone. */
#include <stdio.h>

#include <sring/sring_abi.h>
#include <sring/sring_pattern.h>
#include <sring/sring_version.h>

int main(void)
{
	struct sring_block_header header = { .magic = SRING_BLOCK_MAGIC };

	printf("sring %s, ABI %d.%d, block header %zu bytes, first sample 0x%04x\n",
	       SRING_VERSION, SRING_ABI_VERSION_MAJOR, SRING_ABI_VERSION_MINOR,
	       sizeof(header), sring_pattern_sample(0, 1));
	return header.magic == SRING_BLOCK_MAGIC ? 0 : 1;
}
