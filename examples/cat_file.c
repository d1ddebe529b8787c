/*
 * cat_file: a `git cat-file` work-alike whose packed objects are read through odbpack.
 *
 *   cat_file <objects-dir> -t|-s|-p <id-or-prefix>   type, size or content of one object
 *   cat_file <objects-dir> --batch                   ids/prefixes on stdin, output like
 *                                                    `git cat-file --batch`
 *
 * It builds its own object database exactly as the README shows: libgit2's loose backend for
 * loose objects (and writes) plus odbpack in place of libgit2's pack backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/odb_backend.h>

#include "odbpack.h"

static int fail(const char *what)
{
	const git_error *error = git_error_last();
	fprintf(stderr, "cat_file: %s: %s\n", what, error && error->message ? error->message : "unknown error");
	return 1;
}

static int open_odb(git_odb **out, const char *objects_dir)
{
	git_odb *odb = NULL;
	git_odb_backend *loose = NULL, *packs = NULL;

	if (git_odb_new(&odb) < 0)
		return fail("git_odb_new");
	if (git_odb_backend_loose(&loose, objects_dir, -1, 0, 0, 0) < 0 || git_odb_add_backend(odb, loose, 1) < 0)
		return fail("loose backend");
	if (odbpack_backend_new(&packs, objects_dir) < 0)
		return fail("odbpack_backend_new");
	if (git_odb_add_backend(odb, packs, 2) < 0) {
		packs->free(packs);
		return fail("git_odb_add_backend");
	}
	*out = odb;
	return 0;
}

/* Reads an object by full id or by prefix (4..40 hex digits). */
static int read_object(git_odb_object **out, git_odb *odb, const char *spec)
{
	git_oid id;
	size_t len = strlen(spec);

	if (len < GIT_OID_MINPREFIXLEN || len > GIT_OID_HEXSZ || git_oid_fromstrn(&id, spec, len) < 0)
		return GIT_ENOTFOUND;
	return git_odb_read_prefix(out, odb, &id, len);
}

static int batch(git_odb *odb)
{
	char line[128];

	while (fgets(line, sizeof(line), stdin)) {
		git_odb_object *object = NULL;
		char hex[GIT_OID_HEXSZ + 1];
		int error;

		line[strcspn(line, "\r\n")] = '\0';
		error = read_object(&object, odb, line);
		if (error == GIT_ENOTFOUND) {
			printf("%s missing\n", line);
			continue;
		}
		if (error == GIT_EAMBIGUOUS) {
			printf("%s ambiguous\n", line);
			continue;
		}
		if (error < 0)
			return fail(line);
		git_oid_tostr(hex, sizeof(hex), git_odb_object_id(object));
		printf("%s %s %zu\n", hex, git_object_type2string(git_odb_object_type(object)), git_odb_object_size(object));
		fwrite(git_odb_object_data(object), 1, git_odb_object_size(object), stdout);
		putchar('\n');
		git_odb_object_free(object);
	}
	return 0;
}

static int one(git_odb *odb, const char *mode, const char *spec)
{
	git_odb_object *object = NULL;

	if (read_object(&object, odb, spec) < 0)
		return fail(spec);
	if (!strcmp(mode, "-t"))
		printf("%s\n", git_object_type2string(git_odb_object_type(object)));
	else if (!strcmp(mode, "-s"))
		printf("%zu\n", git_odb_object_size(object));
	else
		fwrite(git_odb_object_data(object), 1, git_odb_object_size(object), stdout);
	git_odb_object_free(object);
	return 0;
}

int main(int argc, char **argv)
{
	git_odb *odb = NULL;
	int status;

	if (argc < 3 || (strcmp(argv[2], "--batch") && argc != 4)) {
		fprintf(stderr, "usage: %s <objects-dir> (-t|-s|-p <id>|--batch)\n", argv[0]);
		return 2;
	}
	git_libgit2_init();
	if (open_odb(&odb, argv[1]))
		status = 1;
	else if (!strcmp(argv[2], "--batch"))
		status = batch(odb);
	else
		status = one(odb, argv[2], argv[3]);
	git_odb_free(odb);
	git_libgit2_shutdown();
	return status;
}
