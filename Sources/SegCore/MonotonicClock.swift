#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// The one clock for measuring elapsed time: CLOCK_MONOTONIC, which never jumps with the wall
/// clock. Readings count from an arbitrary fixed point; only differences mean anything.
public enum MonotonicClock {
  /// The current reading in seconds.
  public static func seconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }

  /// The current reading in milliseconds.
  public static func milliseconds() -> Double { seconds() * 1e3 }
}
