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
