import SegCore
import Synchronization

/// An opt-in breakdown of where a training step spends its time, by phase and layer shape.
///
/// Off by default (then each probe is one relaxed atomic load). When on, every layer pass adds
/// its wall-clock time under a key such as `conv3x3 16→16 @570 backward-input`; ``report()``
/// returns the totals. Meant for `unet bench` and tuning, not for production logs.
public enum StepProfile {
  private static let enabled = Atomic<Bool>(false)
  private static let totals = Mutex<[String: (milliseconds: Double, calls: Int)]>([:])

  /// Starts (or restarts) recording, clearing earlier totals.
  public static func start() {
    totals.withLock { $0 = [:] }
    enabled.store(true, ordering: .relaxed)
  }

  /// Stops recording.
  public static func stop() { enabled.store(false, ordering: .relaxed) }

  /// Totals per key (milliseconds, calls), sorted by key.
  public static func report() -> [(key: String, milliseconds: Double, calls: Int)] {
    totals.withLock { t in t.map { ($0.key, $0.value.milliseconds, $0.value.calls) }.sorted { $0.key < $1.key } }
  }

  static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

  /// The current monotonic time in milliseconds, or 0 when recording is off.
  @inline(__always)
  static func begin() -> Double {
    guard isEnabled else { return 0 }
    return MonotonicClock.milliseconds()
  }

  /// Adds the time since `start` (from ``begin()``) under the key `key()`.
  @inline(__always)
  static func end(_ start: Double, _ key: @autoclosure () -> String) {
    guard start != 0, isEnabled else { return }
    let now = begin()
    let k = key()
    totals.withLock { t in
      let old = t[k] ?? (0, 0)
      t[k] = (old.milliseconds + now - start, old.calls + 1)
    }
  }
}
