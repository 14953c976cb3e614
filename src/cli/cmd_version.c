/* cmd_version.c - `vigil version`: version, compiler and library versions. */
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

int cmd_version(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: vigil version\n\nPrints vigil's version and the versions of the libraries it was built with.\n");
            return 0;
        }
        fprintf(stderr, "vigil version: unknown argument '%s'\n", argv[i]);
        return 2;
    }
    printf("vigil %s\n", VIGIL_VERSION);
    printf("  compiler     %s\n", __VERSION__);
    printf("  microhttpd   %s\n", MHD_get_version());
    printf("  jansson      %s\n", JANSSON_VERSION);
    return 0;
}
