/*
 * index_pack: store a pack read on stdin into a repository through odbpack's writepack,
 * the way libgit2's fetch does (git_odb_write_pack -> append... -> commit -> free).
 *
 *   git pack-objects --stdout --all ... | index_pack repo.git
 *
 * Progress lines go to stderr; the last line on stdout is the final counters.
 */
#include <stdio.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/odb_backend.h>

#include "odbpack.h"

static int progress(const git_indexer_progress *stats, void *payload)
{
	unsigned int *calls = payload;
	(*calls)++;
	fprintf(stderr, "\rreceived %u/%u, indexed %u, deltas %u/%u, local %u",
		stats->received_objects, stats->total_objects, stats->indexed_objects,
		stats->indexed_deltas, stats->total_deltas, stats->local_objects);
	return 0;
}

static int fail(const char *what)
{
	const git_error *error = git_error_last();
	fprintf(stderr, "\nindex_pack: %s: %s\n", what, error && error->message ? error->message : "unknown error");
	return 1;
}

int main(int argc, char **argv)
{
	char objects[4096];
	static char buffer[65536];
	git_odb *odb = NULL;
	git_odb_backend *backend = NULL;
	git_odb_writepack *writepack = NULL;
	git_indexer_progress stats;
	unsigned int calls = 0;
	size_t got;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <repository.git>  < pack\n", argv[0]);
		return 2;
	}
	if (snprintf(objects, sizeof(objects), "%s/objects", argv[1]) >= (int)sizeof(objects)) {
		fprintf(stderr, "index_pack: path too long\n");
		return 2;
	}
	git_libgit2_init();
	memset(&stats, 0, sizeof(stats));
	if (git_odb_new(&odb) < 0) {
		rc = fail("git_odb_new");
		goto out;
	}
	if (odbpack_backend_new(&backend, objects) < 0) {
		rc = fail("odbpack_backend_new");
		goto out;
	}
	if (git_odb_add_backend(odb, backend, 2) < 0) {
		backend->free(backend);
		rc = fail("git_odb_add_backend");
		goto out;
	}
	if (git_odb_write_pack(&writepack, odb, progress, &calls) < 0) {
		rc = fail("git_odb_write_pack");
		goto out;
	}
	while ((got = fread(buffer, 1, sizeof(buffer), stdin)) > 0) {
		stats.received_bytes += got;
		if (writepack->append(writepack, buffer, got, &stats) < 0) {
			rc = fail("append");
			goto out;
		}
	}
	if (ferror(stdin)) {
		fprintf(stderr, "index_pack: error reading stdin\n");
		goto out;
	}
	if (writepack->commit(writepack, &stats) < 0) {
		rc = fail("commit");
		goto out;
	}
	fprintf(stderr, "\n");
	printf("total %u received %u indexed %u deltas %u/%u local %u bytes %lu callbacks %u\n",
		stats.total_objects, stats.received_objects, stats.indexed_objects,
		stats.indexed_deltas, stats.total_deltas, stats.local_objects,
		(unsigned long)stats.received_bytes, calls);
	rc = 0;
out:
	if (writepack)
		writepack->free(writepack);
	git_odb_free(odb);
	git_libgit2_shutdown();
	return rc;
}
