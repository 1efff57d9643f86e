import SegCore

/// A 2-D affine map p ↦ M p + t on (x, y) pixel coordinates (pixel centres at integers):
/// x' = a x + b y + tx, y' = c x + d y + ty.
public struct Affine2D: Sendable, Equatable, Codable {
  public var a: Double, b: Double, tx: Double
  public var c: Double, d: Double, ty: Double

  public init(a: Double, b: Double, tx: Double, c: Double, d: Double, ty: Double) {
    self.a = a
    self.b = b
    self.tx = tx
    self.c = c
    self.d = d
    self.ty = ty
  }

  public static let identity = Affine2D(a: 1, b: 0, tx: 0, c: 0, d: 1, ty: 0)

  public static func translation(_ x: Double, _ y: Double) -> Affine2D {
    Affine2D(a: 1, b: 0, tx: x, c: 0, d: 1, ty: y)
  }

  /// Rotation by `degrees` (counter-clockwise on screen is negative: y points down;
  /// Rot = [[cos, −sin], [sin, cos]] as the bench defines it).
  public static func rotation(degrees: Double) -> Affine2D {
    let r = degrees * Double.pi / 180
    return Affine2D(a: cos(r), b: -sin(r), tx: 0, c: sin(r), d: cos(r), ty: 0)
  }

  public static func scale(_ sx: Double, _ sy: Double) -> Affine2D {
    Affine2D(a: sx, b: 0, tx: 0, c: 0, d: sy, ty: 0)
  }

  /// Shear along x by `degrees` (x' = x + tan(θ) y) and along y by `yDegrees`.
  public static func shear(xDegrees: Double, yDegrees: Double = 0) -> Affine2D {
    Affine2D(a: 1, b: tan(xDegrees * Double.pi / 180), tx: 0, c: tan(yDegrees * Double.pi / 180), d: 1, ty: 0)
  }

  /// self ∘ other: first `other`, then `self`.
  public func after(_ other: Affine2D) -> Affine2D {
    Affine2D(
      a: a * other.a + b * other.c, b: a * other.b + b * other.d, tx: a * other.tx + b * other.ty + tx,
      c: c * other.a + d * other.c, d: c * other.b + d * other.d, ty: c * other.tx + d * other.ty + ty)
  }

  public var determinant: Double { a * d - b * c }

  /// The inverse map (nil when singular).
  public var inverse: Affine2D? {
    let det = determinant
    guard abs(det) > 1e-12 else { return nil }
    let ia = d / det
    let ib = -b / det
    let ic = -c / det
    let id = a / det
    return Affine2D(a: ia, b: ib, tx: -(ia * tx + ib * ty), c: ic, d: id, ty: -(ic * tx + id * ty))
  }

  @inline(__always)
  public func apply(_ x: Double, _ y: Double) -> (Double, Double) {
    (a * x + b * y + tx, c * x + d * y + ty)
  }
}

/// One geometric stage as a map from its output coordinates back to its input coordinates.
public enum BackwardMap: Sendable, Equatable {
  /// input = M · output
  case affine(Affine2D)
  /// input = output + (dx, dy)(output), the displacement sampled on the output grid
  /// (row-major, output width × height) and interpolated bilinearly between grid points.
  case displacement(dx: [Float], dy: [Float])
}

/// A geometric stage in a fused group: its backward map, its input and output sizes, and
/// the border rule for coordinates that leave its input.
public struct GeometricLayer: Sendable, Equatable {
  public var map: BackwardMap
  public var inputWidth: Int
  public var inputHeight: Int
  public var outputWidth: Int
  public var outputHeight: Int
  public var border: BorderMode

  public init(
    map: BackwardMap, inputWidth: Int, inputHeight: Int, outputWidth: Int, outputHeight: Int, border: BorderMode
  ) {
    if case .displacement(let dx, let dy) = map {
      precondition(dx.count == outputWidth * outputHeight && dy.count == dx.count, "displacement field size mismatch")
    }
    self.map = map
    self.inputWidth = inputWidth
    self.inputHeight = inputHeight
    self.outputWidth = outputWidth
    self.outputHeight = outputHeight
    self.border = border
  }
}

extension SourceMap {
  /// Composes consecutive geometric stages (first to last) into one map from the last
  /// stage's output grid to the first stage's input, applying each stage's border rule to
  /// the coordinates that leave that stage's input. This equals applying the stages one after
  /// the other, except that the image is interpolated once instead of once per stage.
  public static func compose(_ layers: [GeometricLayer], threads: Int = 1) -> SourceMap {
    precondition(!layers.isEmpty, "compose needs at least one layer")
    for k in 1..<max(layers.count, 1) {
      precondition(
        layers[k].inputWidth == layers[k - 1].outputWidth && layers[k].inputHeight == layers[k - 1].outputHeight,
        "geometric layer \(k) input does not match layer \(k - 1) output")
    }
    guard let last = layers.last else { return .identity(width: 0, height: 0) }
    let w = last.outputWidth
    let h = last.outputHeight
    var xs = [Float](repeating: 0, count: w * h)
    var ys = [Float](repeating: 0, count: w * h)
    xs.withUnsafeMutableBufferPointer { px in
      ys.withUnsafeMutableBufferPointer { py in
        let outX = SharedBuffer(px)
        let outY = SharedBuffer(py)
        let chunks = max(1, min(h, threads * 4))
        // Chunk k writes only its own rows of outX/outY.
        Parallel.forEach(tasks: chunks, workers: threads) { _, k in
          for row in Parallel.range(k, of: chunks, count: h) {
            for col in 0..<w {
              var u = Float(col)
              var v = Float(row)
              for layer in layers.reversed() {
                if u.isNaN { break }
                (u, v) = backward(layer, u, v)
                if let fu = Border.fold(u, layer.inputWidth, layer.border),
                  let fv = Border.fold(v, layer.inputHeight, layer.border)
                {
                  u = fu
                  v = fv
                } else {
                  u = .nan
                  v = .nan
                }
              }
              outX[row * w + col] = u
              outY[row * w + col] = v
            }
          }
        }
      }
    }
    return SourceMap(width: w, height: h, x: xs, y: ys)
  }

  @inline(__always)
  static func backward(_ layer: GeometricLayer, _ u: Float, _ v: Float) -> (Float, Float) {
    switch layer.map {
    case .affine(let m):
      // The same arithmetic as the fused affine warp (CKernels_warp_affine) uses for output
      // pixel (u, v), so both routes give identical coordinates.
      return (
        Float(m.a) * u + Float(m.b * Double(v) + m.tx),
        Float(m.c) * u + Float(m.d * Double(v) + m.ty)
      )
    case .displacement(let dx, let dy):
      let w = layer.outputWidth
      let h = layer.outputHeight
      // (u, v) lies in [0, w − 1] × [0, h − 1] here (the next stage folded it).
      let cu = min(max(u, 0), Float(w - 1))
      let cv = min(max(v, 0), Float(h - 1))
      let x0 = Int(cu)
      let y0 = Int(cv)
      let fx = cu - Float(x0)
      let fy = cv - Float(y0)
      if fx == 0 && fy == 0 {
        let i = y0 * w + x0
        return (u + dx[i], v + dy[i])
      }
      let x1 = min(x0 + 1, w - 1)
      let y1 = min(y0 + 1, h - 1)
      func lerp(_ f: [Float]) -> Float {
        let top = f[y0 * w + x0] + (f[y0 * w + x1] - f[y0 * w + x0]) * fx
        let bottom = f[y1 * w + x0] + (f[y1 * w + x1] - f[y1 * w + x0]) * fx
        return top + (bottom - top) * fy
      }
      return (u + lerp(dx), v + lerp(dy))
    }
  }
}

#if canImport(Glibc)
  import Glibc
#endif
