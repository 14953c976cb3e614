/* fuzz_config.c - libFuzzer target for the YAML configuration loader: any
 * bytes must give VIGIL_OK or an error with a message, never a crash, and a
 * successfully loaded configuration must still validate or fail cleanly. */
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vigil_config cfg;
    config_defaults(&cfg);
    vigil_error err = {0};
    if (config_load_string(&cfg, (const char *)data, size, "fuzz.yaml", &err) == VIGIL_OK) {
        (void)config_validate(&cfg, &err);
    } else if (err.message[0] == '\0') {
        __builtin_trap(); /* every failure must say why */
    }
    return 0;
}
