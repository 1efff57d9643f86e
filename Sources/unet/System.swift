import ArgumentParser
import CSystemShims
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// write(2), named so it does not clash with TextOutputStream.write.
@inline(__always)
func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
  write(fd, p, n)
}

/// Flushes stdout (print is buffered when stdout is not a terminal).
func flushStandardOutput() {
  fflush(nil)
}

/// Whether stdout/stderr is a terminal.
func isTerminal(_ fd: Int32) -> Bool { isatty(fd) != 0 }

/// Keeps large buffers (decoded images, tiles, activations) on the heap instead of fresh
/// mmap regions: glibc's default maps every allocation over 128 KiB anew and unmaps it on
/// free, so each new image buffer costs a page fault per 4 KiB and a zeroing pass by the
/// kernel (a quarter of a 16-bit PNG decode's time, measured with perf). Freed memory is
/// kept for reuse up to 512 MiB before it is returned to the system. (32 MiB is the largest
/// mmap threshold glibc accepts on 64-bit; a larger value makes mallopt fail.)
func tuneMemoryAllocator() {
  _ = CSystemShims_set_malloc_thresholds(32 << 20, 512 << 20)
}

/// Catches SIGINT and SIGTERM so a training run can stop at the end of its step with its
/// checkpoints written; returns the poll that `TrainRunOptions.stopRequest` expects.
func installStopHandlers() -> @Sendable () -> String? {
  _ = CSystemShims_install_stop_handlers()
  return {
    guard let signal = caughtStopSignal() else { return nil }
    return signal == SIGINT ? "interrupted (SIGINT)" : (signal == SIGTERM ? "terminated (SIGTERM)" : "signal \(signal)")
  }
}

/// The signal the stop handlers caught, if any.
func caughtStopSignal() -> Int32? {
  let s = CSystemShims_stop_signal()
  return s == 0 ? nil : s
}

/// The environment variable by which `unet train` tells the `unet prepare --epoch` child it
/// spawns which process it belongs to.
let parentProcessVariable = "UNET_PARENT_PID"

/// In a child spawned by `unet train` (the variable above names its pid): ends this process
/// when that parent exits, however it exits (an error, SIGKILL), so a background epoch never
/// outlives its run and holds the epoch folder's lock against the resumed one.
func dieWithParentIfAsked() throws {
  guard let value = ProcessInfo.processInfo.environment[parentProcessVariable], let pid = Int32(value) else { return }
  if CSystemShims_die_with_parent(pid) == 1 {
    throw ValidationError("\(parentProcessVariable)=\(pid): the unet train process that started this one has exited")
  }
}
