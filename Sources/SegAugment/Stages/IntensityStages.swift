import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// Per-channel (or whole-image) mean and standard deviation, e.g. of a data set.
public struct ChannelStatistics: Sendable, Equatable, Codable {
  public var mean: [Double]
  public var std: [Double]

  public init(mean: [Double], std: [Double]) {
    self.mean = mean
    self.std = std
  }
}

/// Streaming mean/variance (Welford/Chan, numerically stable), per channel and over all
/// channels, for per-data-set z-scores.
public struct RunningStatistics: Sendable, Equatable {
  public private(set) var count: [Double] = []
  public private(set) var mean: [Double] = []
  public private(set) var m2: [Double] = []
  public private(set) var allCount: Double = 0
  public private(set) var allMean: Double = 0
  public private(set) var allM2: Double = 0

  public init() {}

  /// Adds every sample of every channel of `image`.
  public mutating func add(_ image: Image) {
    if count.count < image.channels {
      let extra = image.channels - count.count
      count += [Double](repeating: 0, count: extra)
      mean += [Double](repeating: 0, count: extra)
      m2 += [Double](repeating: 0, count: extra)
    }
    let f = image.floatSamples()
    let n = image.planeSize
    for c in 0..<image.channels {
      // Two-pass statistics of this plane, then Chan's merge into the running totals.
      var s = 0.0
      for i in (c * n)..<((c + 1) * n) { s += Double(f[i]) }
      let pm = s / Double(max(n, 1))
      var q = 0.0
      for i in (c * n)..<((c + 1) * n) {
        let d = Double(f[i]) - pm
        q += d * d
      }
      merge(&count[c], &mean[c], &m2[c], Double(n), pm, q)
      merge(&allCount, &allMean, &allM2, Double(n), pm, q)
    }
  }

  private func merge(_ n: inout Double, _ m: inout Double, _ q: inout Double, _ nb: Double, _ mb: Double, _ qb: Double) {
    let total = n + nb
    guard total > 0 else { return }
    let delta = mb - m
    m += delta * nb / total
    q += qb + delta * delta * n * nb / total
    n = total
  }

  /// Population statistics per channel, or over all channels (one entry) when `perChannel`
  /// is false.
  public func statistics(perChannel: Bool) -> ChannelStatistics {
    if perChannel {
      return ChannelStatistics(
        mean: mean, std: zip(m2, count).map { $1 > 0 ? ($0 / $1).squareRoot() : 0 })
    }
    return ChannelStatistics(mean: [allMean], std: [allCount > 0 ? (allM2 / allCount).squareRoot() : 0])
  }
}

/// Intensity normalisation; masks are untouched.
public struct NormalizeStage: AugmentationStage, Equatable {
  public static let key = "normalize"

  public enum Method: Sendable, Equatable {
    /// (x − min) / (max − min) to [0, 1].
    case minmax
    /// x · factor (1/255 for 8-bit, 1/65535 for 16-bit).
    case scale(Double)
    /// Clip to the [low, high] percentiles, then map that interval to [0, 1].
    case percentile(low: Double, high: Double)
    /// (x − mean) / std from the image itself.
    case zscoreImage
    /// (x − mean) / std from the whole data set (a first streaming pass).
    case zscoreDataset
  }

  public var method: Method
  /// Statistics per channel (true) or over all channels of the image.
  public var perChannel: Bool
  /// Set by the engine for `zscoreDataset` after its first pass.
  public var datasetStatistics: ChannelStatistics?
  public var probability: Double

  public init(method: Method, perChannel: Bool = true, datasetStatistics: ChannelStatistics? = nil, probability: Double = 1) {
    self.method = method
    self.perChannel = perChannel
    self.datasetStatistics = datasetStatistics
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    let method = self.method
    let perChannel = self.perChannel
    let stats = datasetStatistics
    var record: [(String, JSONValue)] = [("applied", true)]
    switch method {
    case .minmax: record.append(("method", "minmax"))
    case .scale(let f): record += [("method", "scale"), ("factor", .double(f))]
    case .percentile(let lo, let hi): record += [("method", "percentile"), ("low", .double(lo)), ("high", .double(hi))]
    case .zscoreImage: record.append(("method", "zscore_image"))
    case .zscoreDataset:
      record.append(("method", "zscore_dataset"))
      if let stats { record += [("mean", .array(stats.mean.map { .number($0) })), ("std", .array(stats.std.map { .number($0) }))] }
    }
    record.append(("per_channel", .bool(perChannel)))
    return StageDraw(
      action: .intensity { image in NormalizeStage.apply(method, perChannel: perChannel, dataset: stats, to: &image) },
      parameters: .object(record))
  }

  /// Normalises `image` (float32) in place.
  public static func apply(_ method: Method, perChannel: Bool, dataset: ChannelStatistics?, to image: inout Image) {
    var f = image.floatSamples()
    let n = image.planeSize
    let groups: [Range<Int>] =
      perChannel ? (0..<image.channels).map { ($0 * n)..<(($0 + 1) * n) } : [0..<(n * image.channels)]
    for (g, range) in groups.enumerated() {
      switch method {
      case .scale(let factor):
        let s = Float(factor)
        for i in range { f[i] *= s }
      case .minmax:
        var lo = Float.infinity
        var hi = -Float.infinity
        for i in range where f[i].isFinite {
          lo = min(lo, f[i])
          hi = max(hi, f[i])
        }
        let span = hi - lo
        for i in range { f[i] = span > 0 ? (f[i] - lo) / span : 0 }
      case .percentile(let low, let high):
        let slice = Array(f[range])
        let lo = percentile(slice, low)
        let hi = percentile(slice, high)
        let span = hi - lo
        for i in range { f[i] = span > 0 ? min(max((f[i] - lo) / span, 0), 1) : 0 }
      case .zscoreImage:
        var s = 0.0
        for i in range { s += Double(f[i]) }
        let mean = s / Double(max(range.count, 1))
        var q = 0.0
        for i in range {
          let d = Double(f[i]) - mean
          q += d * d
        }
        let std = (q / Double(max(range.count, 1))).squareRoot()
        let m = Float(mean)
        let inv = std > 0 ? Float(1 / std) : 0
        for i in range { f[i] = (f[i] - m) * inv }
      case .zscoreDataset:
        guard let dataset, !dataset.mean.isEmpty else { continue }
        let k = min(g, dataset.mean.count - 1)
        let m = Float(dataset.mean[k])
        let inv = dataset.std[k] > 0 ? Float(1 / dataset.std[k]) : 0
        for i in range { f[i] = (f[i] - m) * inv }
      }
    }
    image = Image(width: image.width, height: image.height, channels: image.channels, pixels: f)
  }

  /// The p-th percentile (0...100) with linear interpolation between order statistics (numpy's
  /// default), ignoring non-finite values. Two quickselects on a copy: O(n) expected.
  public static func percentile(_ values: [Float], _ p: Double) -> Float {
    var a = values.filter { $0.isFinite }
    guard !a.isEmpty else { return 0 }
    let pos = min(max(p, 0), 100) / 100 * Double(a.count - 1)
    let j = Int(pos)
    let t = Float(pos - Double(j))
    let lo = select(&a, j)
    if j + 1 >= a.count || t == 0 { return lo }
    // After selecting j, everything right of j is ≥ a[j]: the next order statistic is their minimum.
    var hi = Float.infinity
    for k in (j + 1)..<a.count { hi = min(hi, a[k]) }
    return lo + (hi - lo) * t
  }

  /// The k-th smallest element (0-based); partially reorders `a` (Hoare quickselect,
  /// median-of-three pivots: deterministic).
  static func select(_ a: inout [Float], _ k: Int) -> Float {
    var lo = 0
    var hi = a.count - 1
    while lo < hi {
      let mid = lo + (hi - lo) / 2
      if a[mid] < a[lo] { a.swapAt(mid, lo) }
      if a[hi] < a[lo] { a.swapAt(hi, lo) }
      if a[hi] < a[mid] { a.swapAt(hi, mid) }
      let pivot = a[mid]
      var i = lo
      var j = hi
      while i <= j {
        while a[i] < pivot { i += 1 }
        while a[j] > pivot { j -= 1 }
        if i <= j {
          a.swapAt(i, j)
          i += 1
          j -= 1
        }
      }
      if k <= j {
        hi = j
      } else if k >= i {
        lo = i
      } else {
        return a[k]
      }
    }
    return a[k]
  }

  public var settings: JSONValue {
    var fields: [(String, JSONValue)]
    switch method {
    case .minmax: fields = [("method", "minmax")]
    case .scale(let f): fields = [("method", "scale"), ("factor", .double(f))]
    case .percentile(let lo, let hi): fields = [("method", "percentile"), ("low", .double(lo)), ("high", .double(hi))]
    case .zscoreImage: fields = [("method", "zscore"), ("scope", "image")]
    case .zscoreDataset: fields = [("method", "zscore"), ("scope", "dataset")]
    }
    return .object(fields + [("per_channel", .bool(perChannel)), ("p", .double(probability))])
  }
}

/// Runs `body` once per channel with the image's samples, the channel's index range in them and
/// its value range [lo, hi] (finite samples), then stores the samples back. The shared frame
/// of the range-relative intensity stages.
func transformChannels(
  _ image: inout Image, _ body: (_ values: inout [Float], _ range: Range<Int>, _ lo: Float, _ hi: Float) -> Void
) {
  var f = image.floatSamples()
  let n = image.planeSize
  for (c, (lo, hi)) in channelRanges(f, channels: image.channels, plane: n).enumerated() {
    body(&f, (c * n)..<((c + 1) * n), lo, hi)
  }
  image = Image(width: image.width, height: image.height, channels: image.channels, pixels: f)
}

/// The value range [lo, hi] of each channel (finite samples), for range-relative stages.
func channelRanges(_ f: [Float], channels: Int, plane: Int) -> [(Float, Float)] {
  (0..<channels).map { c in
    var lo = Float.infinity
    var hi = -Float.infinity
    for i in (c * plane)..<((c + 1) * plane) where f[i].isFinite {
      lo = min(lo, f[i])
      hi = max(hi, f[i])
    }
    return lo <= hi ? (lo, hi) : (0, 0)
  }
}

/// Gamma: y = lo + (hi − lo) · ((x − lo) / (hi − lo))^γ on each channel's own value range
/// [lo, hi], so it works for [0, 1] images and for any other range alike.
public struct GammaStage: AugmentationStage, Equatable {
  public static let key = "gamma"
  public var gamma: ParameterRange
  public var probability: Double

  public init(gamma: ParameterRange, probability: Double = 1) {
    self.gamma = gamma
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    let g = gamma.draw(&rng)
    let record: JSONValue = .object([("applied", true), ("gamma", .number(g))])
    if g == 1 { return StageDraw(action: .skipped, parameters: record) }
    return StageDraw(
      action: .intensity { image in
        transformChannels(&image) { f, range, lo, hi in
          guard hi > lo else { return }
          let span = hi - lo
          for i in range { f[i] = lo + span * powf(max(0, (f[i] - lo) / span), Float(g)) }
        }
      }, parameters: record)
  }

  public var settings: JSONValue { .object([("gamma", gamma.json), ("p", .double(probability))]) }
}

/// Brightness and contrast: y = c · (x − μ) + μ + b · (hi − lo), with μ each channel's mean and
/// [lo, hi] its value range (b is a fraction of the range).
public struct BrightnessContrastStage: AugmentationStage, Equatable {
  public static let key = "brightness_contrast"
  public var brightness: ParameterRange
  public var contrast: ParameterRange
  public var probability: Double

  public init(brightness: ParameterRange = .fixed(0), contrast: ParameterRange = .fixed(1), probability: Double = 1) {
    self.brightness = brightness
    self.contrast = contrast
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    let b = brightness.draw(&rng)
    let c = contrast.draw(&rng)
    let record: JSONValue = .object([("applied", true), ("brightness", .number(b)), ("contrast", .number(c))])
    if b == 0 && c == 1 { return StageDraw(action: .skipped, parameters: record) }
    return StageDraw(
      action: .intensity { image in
        transformChannels(&image) { f, range, lo, hi in
          var s = 0.0
          for i in range { s += Double(f[i]) }
          let mu = Float(s / Double(max(range.count, 1)))
          let shift = Float(b) * (hi - lo)
          for i in range { f[i] = Float(c) * (f[i] - mu) + mu + shift }
        }
      }, parameters: record)
  }

  public var settings: JSONValue {
    .object([("brightness", brightness.json), ("contrast", contrast.json), ("p", .double(probability))])
  }
}

/// Additive Gaussian noise with std σ · (hi − lo) per channel (σ a fraction of the range).
public struct NoiseStage: AugmentationStage, Equatable {
  public static let key = "noise"
  public var std: ParameterRange
  public var probability: Double

  public init(std: ParameterRange, probability: Double = 1) {
    self.std = std
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    let s = std.draw(&rng)
    let record: JSONValue = .object([("applied", true), ("std", .number(s))])
    if s == 0 { return StageDraw(action: .skipped, parameters: record) }
    let noiseRNG = rng.child(1)
    return StageDraw(
      action: .intensity { image in
        var r = noiseRNG
        var noise = [Float](repeating: 0, count: image.sampleCount)
        noise.withUnsafeMutableBufferPointer { Noise.gaussian($0, rng: &r) }
        transformChannels(&image) { f, range, lo, hi in
          let scale = Float(s) * (hi > lo ? hi - lo : 1)
          for i in range { f[i] += scale * noise[i] }
        }
      }, parameters: record)
  }

  public var settings: JSONValue { .object([("std", std.json), ("p", .double(probability))]) }
}

/// Gaussian blur of std σ pixels (reflect border).
public struct BlurStage: AugmentationStage, Equatable {
  public static let key = "blur"
  public var sigma: ParameterRange
  public var probability: Double

  public init(sigma: ParameterRange, probability: Double = 1) {
    self.sigma = sigma
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    let s = sigma.draw(&rng)
    let record: JSONValue = .object([("applied", true), ("sigma", .number(s))])
    if s <= 0 { return StageDraw(action: .skipped, parameters: record) }
    return StageDraw(action: .intensity { image in image = Gaussian.blur(image, sigma: s) }, parameters: record)
  }

  public var settings: JSONValue { .object([("sigma", sigma.json), ("p", .double(probability))]) }
}
