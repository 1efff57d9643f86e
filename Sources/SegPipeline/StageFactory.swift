import SegAugment
import SegCore
import SegWeights

/// Builds stages from their entries in a pipeline file.
public enum StageFactory {
  typealias Builder = @Sendable (ConfigNode, BorderMode) throws(PipelineError) -> any AugmentationStage

  /// Every stage a pipeline file can name, with its parser: the one list (a new stage is
  /// added here, and the invariant tests sweep it by its name).
  static let registry: [(name: String, build: Builder)] = [
    (NormalizeStage.key, { n, _ throws(PipelineError) in try normalize(n) }),
    (MirrorPadStage.key, { n, _ throws(PipelineError) in try mirrorPad(n) }),
    (AffineStage.key, { n, border throws(PipelineError) in try affine(n, defaultBorder: border) }),
    (ElasticStage.key, { n, border throws(PipelineError) in try elastic(n, defaultBorder: border) }),
    (CropStage.key, { n, _ throws(PipelineError) in try crop(n) }),
    (GammaStage.key, { n, _ throws(PipelineError) in try gamma(n) }),
    (BrightnessContrastStage.key, { n, _ throws(PipelineError) in try brightnessContrast(n) }),
    (NoiseStage.key, { n, _ throws(PipelineError) in try noise(n) }),
    (BlurStage.key, { n, _ throws(PipelineError) in try blur(n) }),
    (WeightMapStage.key, { n, _ throws(PipelineError) in try weightMap(n) }),
  ]

  /// The names of the stages a pipeline file can use, in the order the format lists them.
  public static let names = registry.map(\.name)

  /// One list item of `stages:`: a mapping with exactly one key, the stage name.
  static func stage(_ item: ConfigNode, defaultBorder: BorderMode) throws(PipelineError) -> any AugmentationStage {
    guard case .mapping(let m) = item.node, m.count == 1, let (k, _) = m.first, let name = k.string else {
      throw item.error(
        .wrongType, "each stage is a mapping with one key, the stage name (e.g. `- affine: {rotate: [-10, 10]}`)")
    }
    let entries = try item.mapping(allowed: names)
    guard let node = entries[name], let stage = registry.first(where: { $0.name == name }) else {
      throw item.error(.unknownKey, "unknown stage \(name)")
    }
    return try stage.build(node, defaultBorder)
  }

  static func probability(_ m: ConfigMapping) throws(PipelineError) -> Double {
    try m["p"]?.probability() ?? 1
  }

  static func normalize(_ node: ConfigNode) throws(PipelineError) -> NormalizeStage {
    let m = try ConfigMapping(node, allowed: ["method", "factor", "low", "high", "scope", "per_channel", "p"])
    let method = try m.required("method").string()
    let perChannel = try m["per_channel"]?.bool() ?? true
    let p = try probability(m)
    func unused(_ keys: [String]) throws(PipelineError) {
      for key in keys {
        if let n = m[key] { throw n.error(.unknownKey, "does not apply to method \(method)") }
      }
    }
    switch method {
    case "minmax":
      try unused(["factor", "low", "high", "scope"])
      return NormalizeStage(method: .minmax, perChannel: perChannel, probability: p)
    case "scale":
      try unused(["low", "high", "scope"])
      let f = try m.required("factor")
      let factor = try f.double()
      try f.check(factor > 0, "factor must be positive")
      return NormalizeStage(method: .scale(factor), perChannel: perChannel, probability: p)
    case "percentile":
      try unused(["factor", "scope"])
      let low = try m["low"]?.double() ?? 1
      let high = try m["high"]?.double() ?? 99
      try (m["low"] ?? node).check(low >= 0 && low < 100, "low must lie in [0, 100)")
      try (m["high"] ?? node).check(high > low && high <= 100, "high must lie in (low, 100]")
      return NormalizeStage(method: .percentile(low: low, high: high), perChannel: perChannel, probability: p)
    case "zscore":
      try unused(["factor", "low", "high"])
      let scope = try m["scope"]?.string() ?? "image"
      guard scope == "image" || scope == "dataset" else {
        throw (m["scope"] ?? node).error(.outOfRange, "scope must be image or dataset")
      }
      return NormalizeStage(method: scope == "image" ? .zscoreImage : .zscoreDataset, perChannel: perChannel, probability: p)
    default:
      throw (m["method"] ?? node).error(.outOfRange, "method must be minmax, scale, percentile or zscore, not \(method)")
    }
  }

  static func mirrorPad(_ node: ConfigNode) throws(PipelineError) -> MirrorPadStage {
    let m = try ConfigMapping(node, allowed: ["margin", "top", "bottom", "left", "right", "p"])
    func side(_ key: String, _ fallback: Int?) throws(PipelineError) -> Int {
      guard let n = m[key] else {
        guard let fallback else { throw node.error(.missingKey, "give margin, or all of top, bottom, left, right") }
        return fallback
      }
      let v = try n.int()
      try n.check(v >= 0 && v <= 100_000, "a margin must be 0...100000 pixels")
      return v
    }
    let margin = try m["margin"].map { (n) throws(PipelineError) -> Int in
      let v = try n.int()
      try n.check(v >= 0 && v <= 100_000, "a margin must be 0...100000 pixels")
      return v
    }
    return MirrorPadStage(
      top: try side("top", margin), bottom: try side("bottom", margin), left: try side("left", margin),
      right: try side("right", margin), probability: try probability(m))
  }

  static func border(_ m: ConfigMapping, _ fallback: BorderMode) throws(PipelineError) -> BorderMode {
    try m["border"]?.choice(BorderMode.self) ?? fallback
  }

  static func affine(_ node: ConfigNode, defaultBorder: BorderMode) throws(PipelineError) -> AffineStage {
    let m = try ConfigMapping(
      node,
      allowed: [
        "rotate", "scale", "scale_y", "shear", "shear_y", "translate", "translate_unit", "flip_h", "flip_v", "rot90",
        "border", "p",
      ])
    let scale = try m["scale"]?.range(within: 0.01...100, "scale") ?? .fixed(1)
    let scaleY = try m["scale_y"]?.range(within: 0.01...100, "scale_y")
    let unit = try m["translate_unit"]?.string() ?? "fraction"
    guard unit == "fraction" || unit == "pixels" else {
      throw (m["translate_unit"] ?? node).error(.outOfRange, "translate_unit must be fraction or pixels")
    }
    let translate = try m["translate"]?.range() ?? .fixed(0)
    if unit == "fraction", let t = m["translate"] {
      try t.check(abs(translate.lower) <= 1 && abs(translate.upper) <= 1, "a translation fraction must lie in [-1, 1]")
    }
    return AffineStage(
      rotate: try m["rotate"]?.range(within: -360...360, "rotate (degrees)") ?? .fixed(0), scale: scale, scaleY: scaleY,
      shear: try m["shear"]?.range(within: -80...80, "shear (degrees)") ?? .fixed(0),
      shearY: try m["shear_y"]?.range(within: -80...80, "shear_y (degrees)") ?? .fixed(0), translate: translate,
      translateInPixels: unit == "pixels", flipHorizontal: try m["flip_h"]?.probability() ?? 0,
      flipVertical: try m["flip_v"]?.probability() ?? 0, rotate90: try m["rot90"]?.probability() ?? 0,
      border: try border(m, defaultBorder), probability: try probability(m))
  }

  static func elastic(_ node: ConfigNode, defaultBorder: BorderMode) throws(PipelineError) -> ElasticStage {
    let m = try ConfigMapping(node, allowed: ["method", "alpha", "sigma", "points", "max_fold", "max_attempts", "border", "p"])
    let method = try m.required("method").choice(ElasticStage.Method.self)
    if method == .grid, let a = m["alpha"] { throw a.error(.unknownKey, "does not apply to method grid (use sigma)") }
    if method == .simard, let k = m["points"] { throw k.error(.unknownKey, "does not apply to method simard") }
    let points = try m["points"]?.int() ?? 3
    try (m["points"] ?? node).check(points >= 2 && points <= 64, "points must be 2...64")
    let maxFold = try m["max_fold"].map { (n) throws(PipelineError) -> Double in
      let v = try n.double()
      try n.check(v >= 0 && v <= 1, "max_fold is a fraction in [0, 1]")
      return v
    }
    let attempts = try m["max_attempts"]?.int() ?? 10
    try (m["max_attempts"] ?? node).check(attempts >= 1 && attempts <= 1000, "max_attempts must be 1...1000")
    return ElasticStage(
      method: method, alpha: try m["alpha"]?.range(within: 0...10_000, "alpha (pixels)") ?? .fixed(34),
      sigma: try m["sigma"]?.range(within: 0...10_000, "sigma (pixels)") ?? .fixed(method == .grid ? 10 : 4),
      points: points, maxFold: maxFold, maxAttempts: attempts, border: try border(m, defaultBorder),
      probability: try probability(m))
  }

  static func crop(_ node: ConfigNode) throws(PipelineError) -> CropStage {
    let m = try ConfigMapping(node, allowed: ["size", "width", "height", "random", "p"])
    let size = try m["size"]?.int()
    let w = try m["width"]?.int() ?? size
    let h = try m["height"]?.int() ?? size
    guard let w, let h else { throw node.error(.missingKey, "give size, or width and height") }
    try node.check(w > 0 && h > 0 && w <= 100_000 && h <= 100_000, "crop sizes must be 1...100000 pixels")
    return CropStage(width: w, height: h, random: try m["random"]?.bool() ?? true, probability: try probability(m))
  }

  static func gamma(_ node: ConfigNode) throws(PipelineError) -> GammaStage {
    let m = try ConfigMapping(node, allowed: ["gamma", "p"])
    let g = try m.required("gamma").range(within: 0.01...100, "gamma")
    return GammaStage(gamma: g, probability: try probability(m))
  }

  static func brightnessContrast(_ node: ConfigNode) throws(PipelineError) -> BrightnessContrastStage {
    let m = try ConfigMapping(node, allowed: ["brightness", "contrast", "p"])
    return BrightnessContrastStage(
      brightness: try m["brightness"]?.range(within: -1...1, "brightness (fraction of the range)") ?? .fixed(0),
      contrast: try m["contrast"]?.range(within: 0...10, "contrast") ?? .fixed(1), probability: try probability(m))
  }

  static func noise(_ node: ConfigNode) throws(PipelineError) -> NoiseStage {
    let m = try ConfigMapping(node, allowed: ["std", "p"])
    return NoiseStage(std: try m.required("std").range(within: 0...10, "std (fraction of the range)"), probability: try probability(m))
  }

  static func blur(_ node: ConfigNode) throws(PipelineError) -> BlurStage {
    let m = try ConfigMapping(node, allowed: ["sigma", "p"])
    return BlurStage(sigma: try m.required("sigma").range(within: 0...100, "sigma (pixels)"), probability: try probability(m))
  }

  static func weightMap(_ node: ConfigNode) throws(PipelineError) -> WeightMapStage {
    let m = try ConfigMapping(node, allowed: ["w0", "sigma", "class_balance", "border_region", "classes"])
    var parameters = WeightMapParameters()
    if let n = m["w0"] {
      parameters.w0 = try n.double()
      try n.check(parameters.w0 >= 0 && parameters.w0 <= 1e6, "w0 must be 0...1e6")
    }
    if let n = m["sigma"] {
      parameters.sigma = try n.double()
      try n.check(parameters.sigma > 0 && parameters.sigma <= 1e4, "sigma must be positive")
    }
    var datasetBalance = false
    if let n = m["class_balance"] {
      if case .sequence = n.node {
        var weights: [Double] = []
        for item in try n.list() {
          let v = try item.double()
          try item.check(v >= 0, "class weights must be non-negative")
          weights.append(v)
        }
        parameters.classBalance = .fixed(weights)
      } else {
        switch try n.string() {
        case "none": parameters.classBalance = .none
        case "image": parameters.classBalance = .image
        case "dataset": datasetBalance = true
        default: throw n.error(.outOfRange, "class_balance must be none, image, dataset or a list of weights per class")
        }
      }
    }
    if let n = m["border_region"] { parameters.border = try n.choice(BorderRegion.self) }
    if let n = m["classes"] {
      let k = try n.int()
      try n.check(k >= 1 && k <= 65536, "classes must be 1...65536")
      parameters.classCount = k
    }
    return WeightMapStage(parameters: parameters, datasetBalance: datasetBalance)
  }
}
