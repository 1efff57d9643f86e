import SegCore

/// How the class-balance term w_c is chosen.
public enum ClassBalance: Sendable, Equatable, Codable {
  /// w_c = 1 everywhere.
  case none
  /// w_c(x) = N / (K · N_class(x)) from this mask's own class frequencies.
  case image
  /// The same formula with frequencies gathered over the whole data set (a streaming pass).
  case dataset(ClassFrequencies)
  /// Fixed weights per class (index = class id).
  case fixed([Double])
}

/// Pixel counts per class over one or many masks, for `ClassBalance.dataset`.
public struct ClassFrequencies: Sendable, Equatable, Codable {
  /// counts[k] = pixels of class k.
  public var counts: [UInt64]

  public init(counts: [UInt64] = []) { self.counts = counts }

  /// Adds a class map's pixels.
  public mutating func add(classes: [UInt32]) {
    // Count into a local table sized by the largest class, then merge: no growth checks
    // in the per-pixel loop.
    let top = Int(classes.max() ?? 0)
    var local = [UInt64](repeating: 0, count: top + 1)
    local.withUnsafeMutableBufferPointer { t in
      classes.withUnsafeBufferPointer { c in
        for v in c { t[Int(v)] &+= 1 }
      }
    }
    if counts.count < local.count { counts += [UInt64](repeating: 0, count: local.count - counts.count) }
    for k in 0..<local.count { counts[k] += local[k] }
  }

  /// w_k = N / (K · N_k) for K classes (classes with no pixels get weight 0: no pixel uses it).
  public func weights(classCount: Int) -> [Double] {
    let k = max(classCount, counts.count, 1)
    let total = Double(counts.reduce(0, +))
    return (0..<k).map { c in
      let n = c < counts.count ? Double(counts[c]) : 0
      return n > 0 ? total / (Double(k) * n) : 0
    }
  }
}

/// Where the border term applies.
public enum BorderRegion: String, Sendable, Codable, CaseIterable {
  /// Background pixels only (the paper and the reference).
  case background
  /// Every pixel (inside a cell d1 = 0, d2 = distance to the next cell).
  case everywhere
}

/// The U-Net weight map w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²)).
///
/// Defaults follow the reference in ../shared/bench/reference: w0 = 10, σ = 5 px, class
/// balance over two classes (background vs cells) from the mask itself, border term on
/// background pixels.
public struct WeightMapParameters: Sendable, Equatable, Codable {
  public var w0: Double
  public var sigma: Double
  public var classBalance: ClassBalance
  public var border: BorderRegion
  /// How the mask encodes cells.
  public var maskKind: MaskKind
  public var connectivity: Connectivity
  /// K for the class balance; nil = 2 for instance and binary masks, max class + 1 for
  /// class masks.
  public var classCount: Int?

  public init(
    w0: Double = 10, sigma: Double = 5, classBalance: ClassBalance = .image, border: BorderRegion = .background,
    maskKind: MaskKind = .auto, connectivity: Connectivity = .four, classCount: Int? = nil
  ) {
    self.w0 = w0
    self.sigma = sigma
    self.classBalance = classBalance
    self.border = border
    self.maskKind = maskKind
    self.connectivity = connectivity
    self.classCount = classCount
  }
}

public enum WeightMap {
  /// The weight map of a label mask, as a one-channel float32 image.
  public static func compute(mask: Image, parameters: WeightMapParameters = .init(), threads: Int = 1) -> Image {
    let instances = InstanceMap(mask: mask, kind: parameters.maskKind, connectivity: parameters.connectivity)
    return compute(instances: instances, parameters: parameters, threads: threads)
  }

  /// The weight map of cells and classes already derived from a mask.
  public static func compute(instances: InstanceMap, parameters: WeightMapParameters, threads: Int = 1) -> Image {
    let w = instances.width
    let h = instances.height
    let balance = classWeights(instances: instances, parameters: parameters)
    var out: [Float]
    if parameters.w0 > 0 {
      out = BorderTerm(w0: parameters.w0, sigma: parameters.sigma).compute(
        ids: instances.ids, width: w, height: h, onBackgroundOnly: parameters.border == .background, threads: threads)
    } else {
      out = [Float](repeating: 0, count: w * h)
    }
    let table = (0...Int(instances.classes.max() ?? 0)).map { Float($0 < balance.count ? balance[$0] : 0) }
    out.withUnsafeMutableBufferPointer { o in
      instances.classes.withUnsafeBufferPointer { c in
        table.withUnsafeBufferPointer { t in
          for i in 0..<o.count { o[i] += t[Int(c[i])] }
        }
      }
    }
    return Image(width: w, height: h, pixels: out)
  }

  /// w_c per class id for this mask and parameters.
  public static func classWeights(instances: InstanceMap, parameters: WeightMapParameters) -> [Double] {
    let k = parameters.classCount ?? (instances.kind == .classes ? Int(instances.classes.max() ?? 0) + 1 : 2)
    switch parameters.classBalance {
    case .none:
      return [Double](repeating: 1, count: max(k, Int(instances.classes.max() ?? 0) + 1))
    case .image:
      var f = ClassFrequencies()
      f.add(classes: instances.classes)
      return f.weights(classCount: k)
    case .dataset(let frequencies):
      return frequencies.weights(classCount: k)
    case .fixed(let weights):
      return weights
    }
  }
}
