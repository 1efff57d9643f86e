import SegCore

/// Keeps a value alive so the optimizer cannot delete the work that made it.
@inline(never)
func blackHole<T>(_ value: T) {
  withExtendedLifetime(value) {}
}

/// Median and quartiles of per-call times, the way ../shared/bench/common.py computes them.
struct TimingStats {
  var median: Double
  var p25: Double
  var p75: Double
  var repeats: Int
  var inner: Int
}

/// Times `body` exactly as the Python peers' `time_fn` does: one untimed call, one timed call
/// to calibrate, calls shorter than `targetMs` looped `inner` times per sample (reported per
/// call), a warm-up of at least one sample and `minWarmupMs`, then `repeats` samples.
func timeFunction(repeats: Int, targetMs: Double = 5, maxInner: Int = 200, minWarmupMs: Double = 20,
                  _ body: () throws -> Void) rethrows -> TimingStats {
  try body()
  var t0 = MonotonicClock.milliseconds()
  try body()
  let first = MonotonicClock.milliseconds() - t0
  let inner = max(1, min(maxInner, Int((targetMs / max(first, 1e-6)).rounded(.up))))
  var spent = 0.0
  var runs = 0
  while runs < inner || spent < minWarmupMs {
    t0 = MonotonicClock.milliseconds()
    try body()
    spent += MonotonicClock.milliseconds() - t0
    runs += 1
  }
  var samples: [Double] = []
  for _ in 0..<max(repeats, 1) {
    t0 = MonotonicClock.milliseconds()
    for _ in 0..<inner { try body() }
    samples.append((MonotonicClock.milliseconds() - t0) / Double(inner))
  }
  let (p25, median, p75) = quartiles(samples)
  return TimingStats(median: median, p25: p25, p75: p75, repeats: samples.count, inner: inner)
}

/// Quartiles with Python's `statistics.quantiles(method="inclusive")` and the median.
func quartiles(_ values: [Double]) -> (Double, Double, Double) {
  let s = values.sorted()
  guard s.count >= 2 else { return (s.first ?? 0, s.first ?? 0, s.first ?? 0) }
  func at(_ q: Double) -> Double {
    let pos = q * Double(s.count - 1)
    let j = Int(pos)
    let frac = pos - Double(j)
    return j + 1 < s.count ? s[j] + (s[j + 1] - s[j]) * frac : s[j]
  }
  return (at(0.25), at(0.5), at(0.75))
}
