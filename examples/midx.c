/*
 * midx: a `git multi-pack-index` work-alike built on odbpack.
 *
 *   midx write [--preferred-pack=<pack>] [--reverse-index] [--progress] <objects-dir>
 *   midx verify <objects-dir>
 *   midx expire [--progress] <objects-dir>
 *
 * A plain `write` goes through libgit2: odbpack is registered as the odb's pack backend and
 * `git_odb_write_multi_pack_index` calls its `writemidx` slot. With options it calls
 * `odbpack_midx_write`. `verify` prints each problem on stderr and exits 1 if there was any.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/odb_backend.h>

#include "odbpack.h"

static int fail(const char *what)
{
	const char *message = odbpack_error_last();
	const git_error *error = git_error_last();

	if (!message && error)
		message = error->message;
	fprintf(stderr, "midx: %s: %s\n", what, message ? message : "unknown error");
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: midx write [--preferred-pack=<pack>] [--reverse-index] [--progress] <objects-dir>\n"
			"       midx verify <objects-dir>\n"
			"       midx expire [--progress] <objects-dir>\n");
	return 129;
}

static void on_progress(uint64_t done, uint64_t total, void *payload)
{
	const char *what = payload;

	fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 "\n", what, done, total);
}

static void on_problem(const char *message, void *payload)
{
	(void)payload;
	fprintf(stderr, "error: %s\n", message);
}

/* The drop-in path: libgit2 asks its pack backend (odbpack) to write the MIDX. */
static int write_through_odb(const char *objects_dir)
{
	git_odb *odb = NULL;
	git_odb_backend *packs = NULL;
	int rc = 1;

	if (git_odb_new(&odb) < 0)
		return fail("git_odb_new");
	if (odbpack_backend_new(&packs, objects_dir) < 0) {
		fail("odbpack_backend_new");
		goto out;
	}
	if (git_odb_add_backend(odb, packs, 2) < 0) {
		packs->free(packs);
		fail("git_odb_add_backend");
		goto out;
	}
	if (git_odb_write_multi_pack_index(odb) < 0) {
		fail("git_odb_write_multi_pack_index");
		goto out;
	}
	rc = 0;
out:
	git_odb_free(odb);
	return rc;
}

int main(int argc, char **argv)
{
	odbpack_midx_write_options options;
	const char *command, *objects_dir;
	int i, with_options = 0, rc;

	if (argc < 3)
		return usage();
	command = argv[1];
	objects_dir = argv[argc - 1];
	if (odbpack_midx_write_options_init(&options, ODBPACK_MIDX_WRITE_OPTIONS_VERSION) < 0)
		return fail("odbpack_midx_write_options_init");
	for (i = 2; i < argc - 1; i++) {
		if (!strncmp(argv[i], "--preferred-pack=", 17))
			options.preferred_pack = argv[i] + 17;
		else if (!strcmp(argv[i], "--reverse-index"))
			options.write_reverse_index = 1;
		else if (!strcmp(argv[i], "--progress")) {
			options.progress = on_progress;
			options.payload = (void *)command;
		} else
			return usage();
		with_options = 1;
	}

	git_libgit2_init();
	if (!strcmp(command, "write")) {
		if (!with_options)
			rc = write_through_odb(objects_dir);
		else
			rc = odbpack_midx_write(objects_dir, &options) < 0 ? fail("odbpack_midx_write") : 0;
	} else if (!strcmp(command, "verify") && !with_options) {
		int problems = odbpack_midx_verify(objects_dir, on_problem, NULL);

		if (problems < 0)
			rc = fail("odbpack_midx_verify");
		else
			rc = problems > 0;
	} else if (!strcmp(command, "expire") && !options.preferred_pack && !options.write_reverse_index) {
		size_t expired = 0;

		if (odbpack_midx_expire(objects_dir, &options, &expired) < 0)
			rc = fail("odbpack_midx_expire");
		else {
			printf("expired %zu pack(s)\n", expired);
			rc = 0;
		}
	} else {
		rc = usage();
	}
	git_libgit2_shutdown();
	return rc;
}
