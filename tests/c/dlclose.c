/*
 * Loads libodbpack.so with dlopen, uses it from a thread that then exits, unloads it with
 * dlclose, and prints whether the library is still mapped ("loaded") or gone ("unloaded").
 *
 * Usage: dlclose <path to libodbpack.so> <objects dir> <change_events: 0 or 1>
 *
 * With change events, freeing a store hands its inotify descriptors to odbpack's closer thread,
 * which lives on in the process running the library's code: the library must then stay loaded
 * whatever the host does. Without them no thread of odbpack's is left, and dlclose unloads it
 * (which shows the probe can tell the two apart).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "odbpack.h"

typedef int (*options_init_fn)(odbpack_options *, unsigned int);
typedef int (*backend_new_ext_fn)(git_odb_backend **, const char *, const odbpack_options *);

static void *library;
static const char *objects_dir;
static int change_events;
static int failed;

static void *use_library(void *unused)
{
	(void)unused;
	/* The POSIX way to take a function from dlsym: ISO C has no object-to-function cast. */
	options_init_fn options_init;
	backend_new_ext_fn backend_new_ext;
	*(void **)&options_init = dlsym(library, "odbpack_options_init");
	*(void **)&backend_new_ext = dlsym(library, "odbpack_backend_new_ext");
	if (!options_init || !backend_new_ext) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		failed = 1;
		return NULL;
	}
	odbpack_options options;
	options_init(&options, ODBPACK_OPTIONS_VERSION);
	options.change_events = change_events;
	git_odb *odb = NULL;
	git_odb_backend *backend = NULL;
	git_oid absent;
	git_oid_fromstr(&absent, "0123456789abcdef0123456789abcdef01234567");
	if (git_odb_new(&odb) != 0 || backend_new_ext(&backend, objects_dir, &options) != 0 ||
	    git_odb_add_backend(odb, backend, 1) != 0) {
		fprintf(stderr, "setting up the odb failed\n");
		failed = 1;
		return NULL;
	}
	/* A miss refreshes the store (and with change events, reads its inotify instance). */
	if (git_odb_exists(odb, &absent)) {
		fprintf(stderr, "an absent object exists\n");
		failed = 1;
	}
	/* Frees the backend and its store. */
	git_odb_free(odb);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s <libodbpack.so> <objects dir> <change_events>\n", argv[0]);
		return 2;
	}
	objects_dir = argv[2];
	change_events = atoi(argv[3]);
	git_libgit2_init();
	library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!library) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	pthread_t thread;
	if (pthread_create(&thread, NULL, use_library, NULL) != 0 || pthread_join(thread, NULL) != 0)
		return 1;
	if (failed)
		return 1;
	if (dlclose(library) != 0) {
		fprintf(stderr, "dlclose: %s\n", dlerror());
		return 1;
	}
	void *still = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
	printf("%s\n", still ? "loaded" : "unloaded");
	git_libgit2_shutdown();
	return 0;
}
