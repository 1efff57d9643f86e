// main for the libFuzzer binary. SwiftPM links every executable with `main` defined as
// `<module>_main` (here unet_fuzz_main), which a -parse-as-library module does not have, so
// this file supplies it and hands over to libFuzzer's driver, which calls the Swift entry
// LLVMFuzzerTestOneInput (Tests/Fuzz/Entry/Entry.swift) for every input.
#include "CFuzzDriver.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int unet_fuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
