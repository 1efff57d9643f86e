import SegAugment
import SegCore
import SegSynth
import SegTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A smooth test image: low-frequency sines (so interpolation error is small).
func smoothImage(width: Int, height: Int, channels: Int = 1, phase: Float = 0) -> Image {
  var v = [Float](repeating: 0, count: width * height * channels)
  for c in 0..<channels {
    for y in 0..<height {
      for x in 0..<width {
        v[(c * height + y) * width + x] =
          sinf(Float(x) * 0.11 + phase + Float(c)) * cosf(Float(y) * 0.07 - phase) + 0.002 * Float(x + y)
      }
    }
  }
  return Image(width: width, height: height, channels: channels, pixels: v)
}

func randomAffine(_ rng: inout RandomStream, width: Int, height: Int) -> Affine2D {
  let cx = Double(width - 1) / 2
  let cy = Double(height - 1) / 2
  let forward = Affine2D.translation(cx + rng.uniform(-8, 8), cy + rng.uniform(-8, 8))
    .after(.rotation(degrees: rng.uniform(-180, 180)))
    .after(.scale(rng.uniform(0.7, 1.4), rng.uniform(0.7, 1.4)))
    .after(.shear(xDegrees: rng.uniform(-15, 15)))
    .after(.translation(-cx, -cy))
  return forward.inverse ?? .identity
}

@Suite struct BorderTests {
  /// The continuous fold agrees with mirror padding's integer one at integers.
  @Test func continuousReflectAgreesWithTheIntegerOneAtIntegers() {
    for n in 1...7 {
      for i in -30...30 { #expect(Border.reflect(Float(i), n) == Float(Pad.reflectIndex(i, n)), "i \(i) n \(n)") }
    }
  }
}

@Suite struct WarpKernelTests {
  @Test(arguments: Interpolation.allCases, BorderMode.allCases)
  func fusedAffineEqualsComposeAndRemap(interpolation: Interpolation, border: BorderMode) {
    for seed in seeds(25) {
      var rng = RandomStream(seed: seed, path: [3])
      let w = 20 + rng.nextInt(below: 40)
      let h = 20 + rng.nextInt(below: 40)
      let ow = 15 + rng.nextInt(below: 50)
      let oh = 15 + rng.nextInt(below: 50)
      let image = smoothImage(width: w, height: h, channels: 2, phase: Float(seed))
      let mask = SyntheticCells(width: w, height: h, cells: 6, radius: 3...8, minArea: 1, seed: seed).labels()
      let m = randomAffine(&rng, width: w, height: h)
      let layer = GeometricLayer(map: .affine(m), inputWidth: w, inputHeight: h, outputWidth: ow, outputHeight: oh, border: border)
      let fast = AffineWarp.warp(
        image: image, mask: mask, backward: m, outputWidth: ow, outputHeight: oh, interpolation: interpolation,
        border: border, fill: -3, threads: 1 + Int(seed % 2))
      let map = SourceMap.compose([layer])
      let slow = Remap.image(image, map: map, interpolation: interpolation, border: border, fill: -3)
      #expect(fast.image == slow, "seed \(seed)")
      #expect(fast.mask == Remap.mask(mask, map: map), "seed \(seed)")
    }
  }

  /// The fused displacement warp gives the bytes of compose + remap (image and mask), for
  /// every interpolation and border, with fields large enough to cross the border.
  @Test(arguments: Interpolation.allCases, BorderMode.allCases)
  func fusedDisplacementEqualsComposeAndRemap(interpolation: Interpolation, border: BorderMode) {
    for seed in seeds(15) {
      var rng = RandomStream(seed: seed, path: [8])
      let w = 12 + rng.nextInt(below: 40)
      let h = 12 + rng.nextInt(below: 40)
      let image = smoothImage(width: w, height: h, channels: 2, phase: Float(seed))
      let mask = SyntheticCells(width: w, height: h, cells: 5, radius: 2...6, minArea: 1, seed: seed).labels()
      let (dx, dy) = ElasticField.grid(width: w, height: h, points: 3, sigma: 4, rng: &rng)
      let layer = GeometricLayer(map: .displacement(dx: dx, dy: dy), inputWidth: w, inputHeight: h, outputWidth: w, outputHeight: h, border: border)
      let fast = AffineWarp.displace(
        image: image, mask: mask, dx: dx, dy: dy, interpolation: interpolation, border: border, fill: -3,
        threads: 1 + Int(seed % 2))
      let map = SourceMap.compose([layer])
      #expect(fast.image == Remap.image(image, map: map, interpolation: interpolation, border: border, fill: -3), "seed \(seed)")
      #expect(fast.mask == Remap.mask(mask, map: map), "seed \(seed)")
    }
  }

  @Test(arguments: Interpolation.allCases)
  func remapEqualsThePerPixelReference(interpolation: Interpolation) {
    for seed in seeds(20) {
      var rng = RandomStream(seed: seed, path: [4])
      let w = 8 + rng.nextInt(below: 30)
      let h = 8 + rng.nextInt(below: 30)
      let image = smoothImage(width: w, height: h, phase: Float(seed))
      let n = 25 * 17
      var xs = (0..<n).map { _ in Float(rng.uniform(0, Double(w - 1))) }
      var ys = (0..<n).map { _ in Float(rng.uniform(0, Double(h - 1))) }
      for i in stride(from: 0, to: n, by: 13) { xs[i] = .nan; ys[i] = .nan }
      xs[1] = Float(w - 1)
      ys[1] = Float(h - 1)
      let map = SourceMap(width: 25, height: 17, x: xs, y: ys)
      let out = Remap.image(image, map: map, interpolation: interpolation, border: .reflect, fill: 9).floatSamples()
      var coefficients = image.floatSamples()
      if interpolation == .bspline {
        coefficients.withUnsafeMutableBufferPointer { BSplinePrefilter.plane($0, width: w, height: h) }
      }
      for i in 0..<n {
        let expected = xs[i].isNaN ? 9 : ReferenceKernels.sample(coefficients, width: w, height: h, x: xs[i], y: ys[i], interpolation: interpolation)
        #expect(abs(out[i] - expected) <= 1e-5, "pixel \(i): \(out[i]) vs \(expected)")
      }
    }
  }

  @Test func bsplineInterpolatesTheSamples() {
    // Prefilter, then evaluate the spline at pixel centres: the original samples come back.
    for (w, h) in [(5, 4), (31, 29), (64, 40), (3, 70)] {
      let image = smoothImage(width: w, height: h)
      let map = SourceMap.identity(width: w, height: h)
      let back = Remap.image(image, map: map, interpolation: .bspline).floatSamples()
      let diff = maxAbsDifference(back, image.floatSamples())
      #expect(diff.value < 2e-5, "\(w)×\(h): \(diff.value)")
    }
  }

  @Test func separableFilterEqualsDirectConvolution() {
    for seed in seeds(12) {
      var rng = RandomStream(seed: seed, path: [5])
      let w = 3 + rng.nextInt(below: 60)
      let h = 3 + rng.nextInt(below: 60)
      let sigma = rng.uniform(0.5, 5)
      let k = Gaussian.kernel(sigma: sigma)
      let data = (0..<(w * h)).map { _ in Float(rng.uniform(-1, 1)) }
      for zero in [true, false] {
        var got = data
        got.withUnsafeMutableBufferPointer { Gaussian.filter($0, width: w, height: h, kernel: k, edge: zero ? .zero : .reflect) }
        let expected = ReferenceKernels.separableFilter(data, width: w, height: h, kernel: k, zeroEdge: zero)
        #expect(maxAbsDifference(got, expected).value < 1e-5, "seed \(seed) \(w)×\(h) σ \(sigma)")
      }
    }
    #expect(Gaussian.kernel(sigma: 4).count == 33)
    #expect(abs(Gaussian.kernel(sigma: 2).reduce(0, +) - 1) < 1e-6)
  }

  /// Fused geometry equals applying the stages one by one, within interpolation error, on a
  /// smooth image, away from the borders (where the one-by-one route blurs twice).
  @Test func fusedGroupEqualsSequentialApplication() {
    for seed in seeds(10) {
      var rng = RandomStream(seed: seed, path: [6])
      let w = 64
      let h = 56
      let image = smoothImage(width: w, height: h, phase: Float(seed))
      let pad = GeometricLayer(map: .affine(.translation(-6, -6)), inputWidth: w, inputHeight: h, outputWidth: w + 12, outputHeight: h + 12, border: .reflect)
      let cx = Double(w + 11) / 2
      let cy = Double(h + 11) / 2
      let rot = Affine2D.translation(cx, cy).after(.rotation(degrees: rng.uniform(-10, 10))).after(.translation(-cx, -cy))
      let affine = GeometricLayer(map: .affine(rot), inputWidth: w + 12, inputHeight: h + 12, outputWidth: w + 12, outputHeight: h + 12, border: .reflect)
      var frng = RandomStream(seed: seed, path: [7])
      let (dx, dy) = ElasticField.grid(width: w + 12, height: h + 12, points: 3, sigma: 2, rng: &frng)
      let elastic = GeometricLayer(map: .displacement(dx: dx, dy: dy), inputWidth: w + 12, inputHeight: h + 12, outputWidth: w + 12, outputHeight: h + 12, border: .reflect)
      let layers = [pad, affine, elastic]
      let fused = GeometricGroup.apply(image: image, mask: nil, layers: layers, interpolation: .bicubic).image
      let sequential = ReferenceKernels.sequential(image, layers: layers, interpolation: .bicubic)
      var worst: Float = 0
      for y in 16..<(h + 12 - 16) {
        for x in 16..<(w + 12 - 16) {
          worst = max(worst, abs(Float(fused.value(y: y, x: x)) - Float(sequential.value(y: y, x: x))))
        }
      }
      // The image spans about [−1, 1]; bicubic error on these frequencies is well below 1%.
      #expect(worst < 0.01, "seed \(seed): \(worst)")
    }
  }
}

@Suite struct ElasticFieldTests {
  /// The uniform field generator equals its per-value reference, is a function of (key, index)
  /// only, and has the moments of U(−1, 1): mean 0, variance 1/3, lag-1 correlation 0.
  @Test func uniformNoiseMatchesReferenceAndMoments() {
    for seed in seeds(20) {
      var rng = RandomStream(seed: seed, path: [9])
      let n = 1000 + rng.nextInt(below: 20_000)
      var keyRNG = rng
      let key = keyRNG.next()
      var out = [Float](repeating: 0, count: n)
      out.withUnsafeMutableBufferPointer { Noise.uniformSymmetric($0, scale: 3, rng: &rng) }
      #expect(out == ReferenceKernels.uniformNoise(count: n, key: key, scale: 3), "seed \(seed)")
      #expect(rng.next() == keyRNG.next(), "one draw per field")
      var shorter = [Float](repeating: 0, count: n / 2)
      var again = RandomStream(seed: seed, path: [9])
      _ = again.nextInt(below: 20_000)
      shorter.withUnsafeMutableBufferPointer { Noise.uniformSymmetric($0, scale: 3, rng: &again) }
      #expect(Array(out.prefix(n / 2)) == shorter, "value i does not depend on the length")
    }
    var rng = RandomStream(seed: 77, path: [10])
    let n = 1 << 20
    var u = [Float](repeating: 0, count: n)
    u.withUnsafeMutableBufferPointer { Noise.uniformSymmetric($0, rng: &rng) }
    let mean = u.reduce(0.0) { $0 + Double($1) } / Double(n)
    let variance = u.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n) - mean * mean
    var lag = 0.0
    for i in 1..<n { lag += Double(u[i]) * Double(u[i - 1]) }
    lag /= Double(n - 1) * variance
    // Standard errors for n = 2^20: mean 0.00056, variance 0.00029, correlation 0.001.
    #expect(abs(mean) < 0.003 && abs(variance - 1.0 / 3) < 0.0015 && abs(lag) < 0.005, "\(mean) \(variance) \(lag)")
    #expect(u.allSatisfy { $0 >= -1 && $0 < 1 && ($0 + 1) * 0x1p23 == (($0 + 1) * 0x1p23).rounded() })
  }

  /// The fused noise + filter kernel gives the bytes of the two steps one after the other.
  @Test func smoothedNoiseEqualsNoiseThenFilter() {
    for seed in seeds(12) {
      var rng = RandomStream(seed: seed, path: [11])
      let w = 1 + rng.nextInt(below: 70)
      let h = 1 + rng.nextInt(below: 70)
      let k = Gaussian.kernel(sigma: rng.uniform(0.5, 5))
      var a = rng
      var b = rng
      var fused = [Float](repeating: .nan, count: w * h)
      fused.withUnsafeMutableBufferPointer { Gaussian.smoothedNoise($0, width: w, height: h, kernel: k, scale: 7, rng: &a) }
      var steps = [Float](repeating: 0, count: w * h)
      steps.withUnsafeMutableBufferPointer { p in
        Noise.uniformSymmetric(p, scale: 7, rng: &b)
        Gaussian.filter(p, width: w, height: h, kernel: k, edge: .zero)
      }
      #expect(fused == steps, "seed \(seed): \(w) × \(h), \(k.count) taps")
      #expect(a.next() == b.next())
    }
  }

  /// dx = α · (G ⊛ U) with U iid uniform(−1, 1) (variance 1/3): in the interior, where the
  /// kernel lies wholly inside, Var(dx) = α² / 3 · (Σ k_i²)² for the 2-D separable kernel.
  @Test func simardDisplacementStatisticsMatchTheory() {
    let alpha = 34.0
    let sigma = 4.0
    let k = Gaussian.kernel(sigma: sigma).map(Double.init)
    let s2 = k.reduce(0) { $0 + $1 * $1 }
    let theory = alpha * alpha / 3 * s2 * s2
    var sum = 0.0
    var sq = 0.0
    var n = 0.0
    for seed in seeds(8) {
      var rng = RandomStream(seed: seed, path: [8])
      let (dx, dy) = ElasticField.simard(width: 160, height: 160, alpha: alpha, sigma: sigma, rng: &rng)
      for y in 20..<140 {
        for x in 20..<140 {
          for v in [Double(dx[y * 160 + x]), Double(dy[y * 160 + x])] {
            sum += v
            sq += v * v
            n += 1
          }
        }
      }
    }
    let mean = sum / n
    let variance = sq / n - mean * mean
    // Neighbouring values are strongly correlated, so the effective sample count is small
    // (≈ 8 fields × (120 / 8)² ≈ 1,800): allow 10% on the variance.
    #expect(abs(mean) < 0.1 * theory.squareRoot())
    #expect(abs(variance / theory - 1) < 0.1, "variance \(variance), theory \(theory)")
  }

  @Test func gridFieldPassesThroughTheControlPoints() {
    for seed in seeds(20) {
      var rng = RandomStream(seed: seed, path: [9])
      var copy = rng
      let w = 41
      let h = 33
      let (dx, dy) = ElasticField.grid(width: w, height: h, points: 3, sigma: 10, rng: &rng)
      let cx = (0..<9).map { _ in copy.gaussian() * 10 }
      let cy = (0..<9).map { _ in copy.gaussian() * 10 }
      for (r, y) in [0, 16, 32].enumerated() {
        for (c, x) in [0, 20, 40].enumerated() {
          #expect(abs(Double(dx[y * w + x]) - cx[r * 3 + c]) < 1e-4)
          #expect(abs(Double(dy[y * w + x]) - cy[r * 3 + c]) < 1e-4)
        }
      }
    }
  }

  @Test func foldedFractionSeesFolds() {
    let w = 50
    let zero = [Float](repeating: 0, count: w * w)
    #expect(ElasticField.foldedFraction(dx: zero, dy: zero, width: w, height: w) == 0)
    // dx = −2x folds everywhere (the map x ↦ −x reverses orientation).
    let flip = (0..<(w * w)).map { Float(-2 * ($0 % w)) }
    #expect(ElasticField.foldedFraction(dx: flip, dy: zero, width: w, height: w) == 1)
  }
}

@Suite struct PercentileTests {
  /// The quickselect percentile equals the sort-based definition (numpy's linear method).
  @Test func matchesTheSortedDefinition() {
    for seed in seeds(100) {
      var rng = RandomStream(seed: seed, path: [12])
      let n = 1 + rng.nextInt(below: 300)
      var values = (0..<n).map { _ in Float(rng.nextInt(below: 20)) - 5 }  // many ties
      if seed % 3 == 0 { values.append(.nan) }
      for p in [0.0, 1, 2.5, 50, 97.3, 99, 100] {
        let s = values.filter { $0.isFinite }.sorted()
        let pos = p / 100 * Double(s.count - 1)
        let j = Int(pos)
        let t = Float(pos - Double(j))
        let expected = j + 1 < s.count ? s[j] + (s[j + 1] - s[j]) * t : s[j]
        #expect(NormalizeStage.percentile(values, p) == expected, "seed \(seed) p \(p)")
      }
    }
  }
}
