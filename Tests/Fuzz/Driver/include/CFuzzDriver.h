// The fuzz binary's main (see driver.c). Nothing to call from Swift; the header only makes
// this a module SwiftPM can link into unet-fuzz.
#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H
int unet_fuzz_main(int argc, char **argv);
#endif
