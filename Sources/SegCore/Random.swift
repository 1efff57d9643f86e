#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The SplitMix64 finaliser (Stafford's variant 13): a bijective 64-bit mixer.
@inline(__always)
public func mix64(_ z0: UInt64) -> UInt64 {
  var z = z0
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

/// A counter-based random number generator: output n is `mix64(key + (n + 1)·γ)`, γ the golden
/// ratio constant. This is SplitMix64 with the state split into a fixed key and a counter,
/// so any position of any stream can be computed directly, with no shared state.
///
/// Streams are keyed by a path of integers (seed, source index, sample index, stage index, …)
/// through `RandomStream(seed:path:)`, so a sample's draws do not depend on which worker makes
/// it, in what order, or on which machine. Floats and Gaussians are built from the raw bits
/// here (never `random(in:)`, whose algorithm the standard library may change).
///
/// Reference: Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014, doi:10.1145/2660193.2660195.
public struct RandomStream: RandomNumberGenerator, Sendable, Equatable, Codable {
  public private(set) var key: UInt64
  public private(set) var counter: UInt64

  static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

  /// A stream for `key`, at position 0.
  public init(key: UInt64, counter: UInt64 = 0) {
    self.key = key
    self.counter = counter
  }

  /// The stream for a seed and a path of indices. Different paths give independent streams;
  /// the path is mixed in one element at a time so (1, 23) and (12, 3) differ.
  public init(seed: UInt64, path: [UInt64] = []) {
    var k = mix64(seed ^ 0x5EED_5EED_5EED_5EED)
    for p in path {
      k = mix64(k &+ Self.gamma &+ mix64(p &+ 0xA076_1D64_78BD_642F))
    }
    self.init(key: k)
  }

  /// A child stream for one more path element (e.g. a stage index below a sample's stream).
  public func child(_ index: UInt64) -> RandomStream {
    RandomStream(key: mix64(key &+ Self.gamma &+ mix64(index &+ 0xA076_1D64_78BD_642F)))
  }

  @inline(__always)
  public mutating func next() -> UInt64 {
    counter &+= 1
    return mix64(key &+ counter &* Self.gamma)
  }

  /// Uniform in [0, 1) with 53 random bits.
  @inline(__always)
  public mutating func nextDouble() -> Double {
    Double(next() >> 11) * 0x1p-53
  }

  /// Uniform in [0, 1) with 24 random bits.
  @inline(__always)
  public mutating func nextFloat() -> Float {
    Float(next() >> 40) * 0x1p-24
  }

  /// Uniform in [lo, hi).
  @inline(__always)
  public mutating func uniform(_ lo: Double, _ hi: Double) -> Double {
    lo + (hi - lo) * nextDouble()
  }

  /// Uniform integer in 0..<n (n ≥ 1), by Lemire's multiply-shift with rejection, so there is
  /// no modulo bias.
  public mutating func nextInt(below n: Int) -> Int {
    precondition(n > 0, "nextInt(below:) needs n > 0")
    let bound = UInt64(n)
    var m = next().multipliedFullWidth(by: bound)
    if m.low < bound {
      let threshold = (0 &- bound) % bound
      while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
    }
    return Int(m.high)
  }

  /// True with probability p.
  @inline(__always)
  public mutating func bernoulli(_ p: Double) -> Bool {
    if p >= 1 { return true }
    if p <= 0 { return false }
    return nextDouble() < p
  }

  /// A standard normal draw (Box–Muller, one of the pair; 53-bit uniforms, never log(0)).
  public mutating func gaussian() -> Double {
    let u1 = (Double(next() >> 11) + 0.5) * 0x1p-53
    let u2 = nextDouble()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }

  /// Fisher–Yates shuffle driven by this stream.
  public mutating func shuffle<T>(_ a: inout [T]) {
    guard a.count > 1 else { return }
    for i in stride(from: a.count - 1, to: 0, by: -1) {
      let j = nextInt(below: i + 1)
      if i != j { a.swapAt(i, j) }
    }
  }
}
