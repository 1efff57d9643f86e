import SegAugment
import SegCore

extension Bench {
  /// mirror_pad, affine, elastic_simard and elastic_grid (../shared/bench/README.md): the
  /// image as float32 in [0, 1], the mask as the uint16 labels; random fields drawn inside
  /// the timed call.
  static var augmentOps: [BenchOp] {
    [
      BenchOp(name: "mirror_pad", note: nil) { inputs in
        let image = inputs.image.toFloat32(scale: 1.0 / 255)
        return ({ blackHole(Pad.reflect(image, margin: 94)) }, [])
      },
      BenchOp(name: "affine", note: "image bilinear + mask nearest, reflect") { inputs in
        let image = inputs.image.toFloat32(scale: 1.0 / 255)
        let mask = inputs.labels
        let w = image.width
        let h = image.height
        let cx = Double(w - 1) / 2
        let cy = Double(h - 1) / 2
        let forward = Affine2D.translation(cx, cy).after(.rotation(degrees: 15)).after(.scale(1.1, 1.1))
          .after(.shear(xDegrees: 5)).after(.translation(-cx, -cy))
        guard let backward = forward.inverse else { return nil }
        let layer = GeometricLayer(
          map: .affine(backward), inputWidth: w, inputHeight: h, outputWidth: w, outputHeight: h, border: .reflect)
        let threads = inputs.threads
        return ({ blackHole(GeometricGroup.apply(image: image, mask: mask, layers: [layer], interpolation: .bilinear, threads: threads)) }, [])
      },
      elasticOp("elastic_simard", note: "sigma 4 (33 taps), alpha 34; field generation timed", interpolation: .bilinear) {
        width, height, rng in ElasticField.simard(width: width, height: height, alpha: 34, sigma: 4, rng: &rng)
      },
      elasticOp("elastic_grid", note: "3x3 control points, sigma 10 px; image cubic B-spline, mask nearest", interpolation: .bspline) {
        width, height, rng in ElasticField.grid(width: width, height: height, points: 3, sigma: 10, rng: &rng)
      },
    ]
  }

  /// An elastic op: a fresh field per call (timed), then one warp of image and mask.
  static func elasticOp(
    _ name: String, note: String, interpolation: Interpolation,
    field: @escaping (Int, Int, inout RandomStream) -> (dx: [Float], dy: [Float])
  ) -> BenchOp {
    BenchOp(name: name, note: note) { inputs in
      let image = inputs.image.toFloat32(scale: 1.0 / 255)
      let mask = inputs.labels
      let threads = inputs.threads
      var call = 0
      return ({
        call += 1
        var rng = RandomStream(seed: 1, path: [UInt64(call)])
        let (dx, dy) = field(image.width, image.height, &rng)
        let layer = GeometricLayer(
          map: .displacement(dx: dx, dy: dy), inputWidth: image.width, inputHeight: image.height,
          outputWidth: image.width, outputHeight: image.height, border: .reflect)
        blackHole(GeometricGroup.apply(image: image, mask: mask, layers: [layer], interpolation: interpolation, threads: threads))
      }, [])
    }
  }
}
