import SegCore

/// The result of running the stages on one sample.
public struct AugmentationResult: Sendable {
  public var sample: Sample
  /// Per stage, the parameters it drew (JSON objects, in stage order).
  public var records: [JSONValue]
  /// With `trackMap`: for every output pixel, where it came from in the source image.
  public var sourceMap: SourceMap?
}

/// Runs stages on samples: every stage draws from its own child stream of the sample's stream
/// (stage index as the key), consecutive geometric stages are fused into one resampling, and
/// the image, the mask and any weight map move together.
public enum Augmenter {
  /// - Parameters:
  ///   - rng: the sample's stream (keyed by seed, source and sample index by the caller).
  ///   - interpolation: for the image (and the weight map); masks are always nearest.
  ///   - fill: the image value for a constant border.
  ///   - trackMap: also return the composed source map (for previews).
  public static func run(
    _ stages: [any AugmentationStage], on input: Sample, rng: RandomStream, interpolation: Interpolation = .bilinear,
    fill: Float = 0, trackMap: Bool = false, threads: Int = 1
  ) -> AugmentationResult {
    var shape = SampleShape(width: input.image.width, height: input.image.height, channels: input.image.channels)
    var draws: [StageDraw] = []
    draws.reserveCapacity(stages.count)
    for (index, stage) in stages.enumerated() {
      var stream = rng.child(UInt64(index))
      let draw = stage.draw(shape: shape, rng: &stream)
      shape = stage.outputShape(draw, input: shape)
      draws.append(draw)
    }
    var sample = input
    var pending: [GeometricLayer] = []
    var total: SourceMap? = trackMap ? .identity(width: input.image.width, height: input.image.height) : nil
    func flush() {
      guard !pending.isEmpty else { return }
      if let map = total {
        total = map.chained(with: SourceMap.compose(pending, threads: threads))
      }
      sample = applyGeometry(pending, to: sample, interpolation: interpolation, fill: fill, threads: threads)
      pending.removeAll()
    }
    for draw in draws {
      switch draw.action {
      case .skipped:
        continue
      case .geometric(let layer):
        pending.append(layer)
      case .intensity(let change):
        flush()
        change(&sample.image)
      case .weightMap(let compute):
        flush()
        if let mask = sample.mask { sample.weights = compute(mask) }
      }
    }
    flush()
    return AugmentationResult(sample: sample, records: draws.map(\.parameters), sourceMap: total)
  }

  /// One resampling of the image, the mask (nearest) and the weight map (as an extra image
  /// channel, so it moves with the same interpolation).
  static func applyGeometry(
    _ layers: [GeometricLayer], to sample: Sample, interpolation: Interpolation, fill: Float, threads: Int
  ) -> Sample {
    let image = sample.image
    let carried = sample.weights.map { Image.stack([image, $0]) } ?? image
    let (warped, mask) = GeometricGroup.apply(
      image: carried, mask: sample.mask, layers: layers, interpolation: interpolation, fill: fill, threads: threads)
    guard sample.weights != nil else { return Sample(image: warped, mask: mask, weights: nil) }
    let c = image.channels
    let planes = (0..<c).map { warped.channel($0) }
    return Sample(image: Image.stack(planes), mask: mask, weights: warped.channel(c))
  }
}

extension SourceMap {
  /// The map p ↦ self(inner(p)): `inner` maps this stage group's output into the previous
  /// output (where `self` is defined), `self` maps that into the source. Between grid points
  /// `self` is interpolated bilinearly; NaN (constant border) stays NaN.
  public func chained(with inner: SourceMap) -> SourceMap {
    var xs = [Float](repeating: .nan, count: inner.width * inner.height)
    var ys = xs
    for i in 0..<xs.count {
      let u = inner.x[i]
      let v = inner.y[i]
      guard !u.isNaN, !v.isNaN, width > 0, height > 0 else { continue }
      let cu = min(max(u, 0), Float(width - 1))
      let cv = min(max(v, 0), Float(height - 1))
      let x0 = Int(cu)
      let y0 = Int(cv)
      let x1 = min(x0 + 1, width - 1)
      let y1 = min(y0 + 1, height - 1)
      let fx = cu - Float(x0)
      let fy = cv - Float(y0)
      func lerp(_ a: [Float]) -> Float {
        let p00 = a[y0 * width + x0]
        let p01 = a[y0 * width + x1]
        let p10 = a[y1 * width + x0]
        let p11 = a[y1 * width + x1]
        if p00.isNaN || p01.isNaN || p10.isNaN || p11.isNaN { return .nan }
        let top = p00 + (p01 - p00) * fx
        let bottom = p10 + (p11 - p10) * fx
        return top + (bottom - top) * fy
      }
      xs[i] = lerp(x)
      ys[i] = lerp(y)
    }
    return SourceMap(width: inner.width, height: inner.height, x: xs, y: ys)
  }
}
