import SegCore

/// Mirror padding (numpy `reflect`), any margin, also larger than the image. Used to give the
/// overlap-tile context the paper describes (Ronneberger et al. 2015, Fig. 2).
public struct MirrorPadStage: AugmentationStage, Equatable {
  public static let key = "mirror_pad"
  public var top: Int
  public var bottom: Int
  public var left: Int
  public var right: Int
  public var probability: Double

  public init(top: Int, bottom: Int, left: Int, right: Int, probability: Double = 1) {
    precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "negative margins")
    self.top = top
    self.bottom = bottom
    self.left = left
    self.right = right
    self.probability = probability
  }

  public init(margin: Int, probability: Double = 1) {
    self.init(top: margin, bottom: margin, left: margin, right: margin, probability: probability)
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability), top + bottom + left + right > 0 else { return .skipped }
    let layer = GeometricLayer(
      map: .affine(.translation(-Double(left), -Double(top))), inputWidth: shape.width, inputHeight: shape.height,
      outputWidth: shape.width + left + right, outputHeight: shape.height + top + bottom, border: .reflect)
    return StageDraw(
      action: .geometric(layer),
      parameters: .object([("applied", true), ("top", .int(top)), ("bottom", .int(bottom)), ("left", .int(left)), ("right", .int(right))]))
  }

  public var settings: JSONValue {
    .object([("top", .int(top)), ("bottom", .int(bottom)), ("left", .int(left)), ("right", .int(right)), ("p", .double(probability))])
  }
}

/// Rotation, scale, shear, translation, flips and 90° rotations about the image centre, as one
/// affine map (forward: T(c_out + t) · F · R90 · Rot(θ) · S · Sh · T(−c_in)).
public struct AffineStage: AugmentationStage, Equatable {
  public static let key = "affine"
  /// Degrees, y pointing down (positive turns clockwise on screen).
  public var rotate: ParameterRange
  /// Isotropic scale, or x scale when `scaleY` is set.
  public var scale: ParameterRange
  /// Separate y scale (anisotropic scaling); nil = the same draw as `scale`.
  public var scaleY: ParameterRange?
  /// Shear along x and y, degrees.
  public var shear: ParameterRange
  public var shearY: ParameterRange
  /// Translation, as fractions of the width/height, or pixels when `translateInPixels`.
  public var translate: ParameterRange
  public var translateInPixels: Bool
  /// Probabilities of a horizontal flip, a vertical flip, and a rotation by k·90° (k = 1…3).
  public var flipHorizontal: Double
  public var flipVertical: Double
  public var rotate90: Double
  public var border: BorderMode
  public var probability: Double

  public init(
    rotate: ParameterRange = .fixed(0), scale: ParameterRange = .fixed(1), scaleY: ParameterRange? = nil,
    shear: ParameterRange = .fixed(0), shearY: ParameterRange = .fixed(0), translate: ParameterRange = .fixed(0),
    translateInPixels: Bool = false, flipHorizontal: Double = 0, flipVertical: Double = 0, rotate90: Double = 0,
    border: BorderMode = .reflect, probability: Double = 1
  ) {
    self.rotate = rotate
    self.scale = scale
    self.scaleY = scaleY
    self.shear = shear
    self.shearY = shearY
    self.translate = translate
    self.translateInPixels = translateInPixels
    self.flipHorizontal = flipHorizontal
    self.flipVertical = flipVertical
    self.rotate90 = rotate90
    self.border = border
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    // Draw every parameter, always in the same order, so one parameter's range does not
    // shift another's draw.
    let angle = rotate.draw(&rng)
    let sx = scale.draw(&rng)
    let syDraw = scaleY?.draw(&rng)
    let sy = syDraw ?? sx
    let shx = shear.draw(&rng)
    let shy = shearY.draw(&rng)
    var tx = translate.draw(&rng)
    var ty = translate.draw(&rng)
    let flipH = rng.bernoulli(flipHorizontal)
    let flipV = rng.bernoulli(flipVertical)
    let quarterTurns = rng.bernoulli(rotate90) ? 1 + rng.nextInt(below: 3) : 0
    if !translateInPixels {
      tx *= Double(shape.width)
      ty *= Double(shape.height)
    }
    let swap = quarterTurns % 2 == 1
    let ow = swap ? shape.height : shape.width
    let oh = swap ? shape.width : shape.height
    let cin = (Double(shape.width - 1) / 2, Double(shape.height - 1) / 2)
    let cout = (Double(ow - 1) / 2, Double(oh - 1) / 2)
    var linear = Affine2D.rotation(degrees: angle).after(.scale(sx, sy)).after(.shear(xDegrees: shx, yDegrees: shy))
    // A quarter turn as an exact integer matrix (x, y) ↦ (−y, x), k times.
    for _ in 0..<quarterTurns { linear = Affine2D(a: 0, b: -1, tx: 0, c: 1, d: 0, ty: 0).after(linear) }
    if flipH { linear = Affine2D.scale(-1, 1).after(linear) }
    if flipV { linear = Affine2D.scale(1, -1).after(linear) }
    let forward = Affine2D.translation(cout.0 + tx, cout.1 + ty).after(linear).after(.translation(-cin.0, -cin.1))
    var record: [(String, JSONValue)] = [
      ("applied", true), ("rotate", .number(angle)), ("scale_x", .number(sx)), ("scale_y", .number(sy)),
      ("shear_x", .number(shx)), ("shear_y", .number(shy)), ("translate_x", .number(tx)), ("translate_y", .number(ty)),
      ("flip_h", .bool(flipH)), ("flip_v", .bool(flipV)), ("rot90", .int(quarterTurns)),
    ]
    guard let backward = forward.inverse else {
      record[0] = ("applied", false)
      record.append(("note", "singular map (zero scale): skipped"))
      return StageDraw(action: .skipped, parameters: .object(record))
    }
    if backward == .identity && ow == shape.width && oh == shape.height {
      return StageDraw(action: .skipped, parameters: .object(record + [("identity", true)]))
    }
    let layer = GeometricLayer(
      map: .affine(backward), inputWidth: shape.width, inputHeight: shape.height, outputWidth: ow, outputHeight: oh,
      border: border)
    return StageDraw(action: .geometric(layer), parameters: .object(record))
  }

  public var settings: JSONValue {
    .object([
      ("rotate", rotate.json), ("scale", scale.json), ("scale_y", scaleY?.json ?? .null), ("shear", shear.json),
      ("shear_y", shearY.json), ("translate", translate.json), ("translate_unit", translateInPixels ? "pixels" : "fraction"),
      ("flip_h", .double(flipHorizontal)), ("flip_v", .double(flipVertical)), ("rot90", .double(rotate90)),
      ("border", .string(border.rawValue)), ("p", .double(probability)),
    ])
  }
}

/// Elastic deformation: `simard` (per-pixel uniform noise smoothed by a Gaussian of std σ, times
/// α; Simard et al. 2003) or `grid` (the U-Net paper: a k × k grid of N(0, σ²) displacements,
/// cubic B-spline to every pixel). All parameters in pixels, independent of the image size.
/// Folded maps (Jacobian ≤ 0 on more than `maxFold` of the pixels) are redrawn up to
/// `maxAttempts` times; the last draw is kept and its fold fraction recorded.
public struct ElasticStage: AugmentationStage, Equatable {
  public static let key = "elastic"

  public enum Method: String, Sendable, Codable, CaseIterable {
    case simard, grid
  }

  public var method: Method
  /// simard: α (pixels).
  public var alpha: ParameterRange
  /// simard: Gaussian σ of the smoothing (pixels); grid: std of the control displacements.
  public var sigma: ParameterRange
  /// grid: control points per axis.
  public var points: Int
  public var maxFold: Double?
  public var maxAttempts: Int
  public var border: BorderMode
  public var probability: Double

  public init(
    method: Method, alpha: ParameterRange = .fixed(34), sigma: ParameterRange = .fixed(4), points: Int = 3,
    maxFold: Double? = nil, maxAttempts: Int = 10, border: BorderMode = .reflect, probability: Double = 1
  ) {
    precondition(points >= 2, "an elastic grid needs at least 2 points per axis")
    self.method = method
    self.alpha = alpha
    self.sigma = sigma
    self.points = points
    self.maxFold = maxFold
    self.maxAttempts = max(1, maxAttempts)
    self.border = border
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    let a = alpha.draw(&rng)
    let s = sigma.draw(&rng)
    var fieldRNG = rng
    var dx: [Float] = []
    var dy: [Float] = []
    var folded = 0.0
    var attempts = 0
    repeat {
      attempts += 1
      switch method {
      case .simard:
        (dx, dy) = ElasticField.simard(width: shape.width, height: shape.height, alpha: a, sigma: s, rng: &fieldRNG)
      case .grid:
        (dx, dy) = ElasticField.grid(width: shape.width, height: shape.height, points: points, sigma: s, rng: &fieldRNG)
      }
      guard let limit = maxFold else { break }
      folded = ElasticField.foldedFraction(dx: dx, dy: dy, width: shape.width, height: shape.height)
      if folded <= limit { break }
    } while attempts < maxAttempts
    if maxFold == nil { folded = ElasticField.foldedFraction(dx: dx, dy: dy, width: shape.width, height: shape.height) }
    rng = fieldRNG
    var record: [(String, JSONValue)] = [("applied", true), ("method", .string(method.rawValue))]
    if method == .simard {
      record += [("alpha", .number(a)), ("sigma", .number(s))]
    } else {
      record += [("points", .int(points)), ("sigma", .number(s))]
    }
    record += [("folded_fraction", .number(folded)), ("attempts", .int(attempts))]
    if (method == .simard && a == 0) || (method == .grid && s == 0) {
      return StageDraw(action: .skipped, parameters: .object(record + [("identity", true)]))
    }
    let layer = GeometricLayer(
      map: .displacement(dx: dx, dy: dy), inputWidth: shape.width, inputHeight: shape.height, outputWidth: shape.width,
      outputHeight: shape.height, border: border)
    return StageDraw(action: .geometric(layer), parameters: .object(record))
  }

  public var settings: JSONValue {
    .object([
      ("method", .string(method.rawValue)), ("alpha", alpha.json), ("sigma", sigma.json), ("points", .int(points)),
      ("max_fold", maxFold.map { .double($0) } ?? .null), ("max_attempts", .int(maxAttempts)),
      ("border", .string(border.rawValue)), ("p", .double(probability)),
    ])
  }
}

/// A crop of a fixed size at a random (or centred) position, as a geometric stage: fused with
/// the others, so cropping after a rotation costs nothing extra.
public struct CropStage: AugmentationStage, Equatable {
  public static let key = "crop"
  public var width: Int
  public var height: Int
  /// Random position (uniform over the positions that keep the crop inside), or centred.
  public var random: Bool
  public var probability: Double

  public init(width: Int, height: Int, random: Bool = true, probability: Double = 1) {
    precondition(width > 0 && height > 0, "crop size must be positive")
    self.width = width
    self.height = height
    self.random = random
    self.probability = probability
  }

  public func draw(shape: SampleShape, rng: inout RandomStream) -> StageDraw {
    guard rng.bernoulli(probability) else { return .skipped }
    // Larger crops than the input are centred and filled by the border rule (reflect).
    let spanX = shape.width - width
    let spanY = shape.height - height
    let x0 = spanX < 0 ? spanX / 2 : (random ? rng.nextInt(below: spanX + 1) : spanX / 2)
    let y0 = spanY < 0 ? spanY / 2 : (random ? rng.nextInt(below: spanY + 1) : spanY / 2)
    let layer = GeometricLayer(
      map: .affine(.translation(Double(x0), Double(y0))), inputWidth: shape.width, inputHeight: shape.height,
      outputWidth: width, outputHeight: height, border: .reflect)
    return StageDraw(
      action: .geometric(layer),
      parameters: .object([("applied", true), ("x", .int(x0)), ("y", .int(y0)), ("width", .int(width)), ("height", .int(height))]))
  }

  public var settings: JSONValue {
    .object([("width", .int(width)), ("height", .int(height)), ("random", .bool(random)), ("p", .double(probability))])
  }
}

extension ParameterRange {
  /// A fixed value as a number, a range as [lower, upper].
  public var json: JSONValue { isFixed ? .double(lower) : .array([.double(lower), .double(upper)]) }
}
