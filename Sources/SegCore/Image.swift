/// The element type of an image's samples.
public enum PixelType: String, Sendable, Codable, CaseIterable {
  case uint8
  case uint16
  case uint32
  case float32

  /// Bytes per sample.
  public var byteWidth: Int {
    switch self {
    case .uint8: 1
    case .uint16: 2
    case .uint32, .float32: 4
    }
  }

  /// Whether samples are integers (label masks must be).
  public var isInteger: Bool { self != .float32 }

  /// The largest value the type holds (for integer types), used to scale to [0, 1].
  public var maxValue: Double {
    switch self {
    case .uint8: 255
    case .uint16: 65535
    case .uint32: 4_294_967_295
    case .float32: 1
    }
  }
}

/// The samples of an image, planar: channel 0's rows, then channel 1's rows, and so on.
public enum PixelStorage: Sendable, Equatable {
  case uint8([UInt8])
  case uint16([UInt16])
  case uint32([UInt32])
  case float32([Float])

  public var pixelType: PixelType {
    switch self {
    case .uint8: .uint8
    case .uint16: .uint16
    case .uint32: .uint32
    case .float32: .float32
    }
  }

  public var count: Int {
    switch self {
    case .uint8(let a): a.count
    case .uint16(let a): a.count
    case .uint32(let a): a.count
    case .float32(let a): a.count
    }
  }

  /// Calls `body` with the samples' bytes (host order), without copying.
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    switch self {
    case .uint8(let a): return try a.withUnsafeBytes(body)
    case .uint16(let a): return try a.withUnsafeBytes(body)
    case .uint32(let a): return try a.withUnsafeBytes(body)
    case .float32(let a): return try a.withUnsafeBytes(body)
    }
  }

  /// Calls `body` with the samples' mutable bytes (host order), without copying.
  public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    switch self {
    case .uint8(var a):
      self = .uint8([])
      defer { self = .uint8(a) }
      return try a.withUnsafeMutableBytes(body)
    case .uint16(var a):
      self = .uint16([])
      defer { self = .uint16(a) }
      return try a.withUnsafeMutableBytes(body)
    case .uint32(var a):
      self = .uint32([])
      defer { self = .uint32(a) }
      return try a.withUnsafeMutableBytes(body)
    case .float32(var a):
      self = .float32([])
      defer { self = .float32(a) }
      return try a.withUnsafeMutableBytes(body)
    }
  }

  /// Storage reinterpreting host-order bytes as samples of `type`.
  public init(bytes: [UInt8], type: PixelType) {
    precondition(bytes.count % type.byteWidth == 0, "\(bytes.count) bytes do not hold whole \(type) samples")
    func typed<T>(_: T.Type) -> [T] {
      let n = bytes.count / MemoryLayout<T>.size
      return [T](unsafeUninitializedCapacity: n) { out, count in
        bytes.withUnsafeBytes { raw in
          if let src = raw.baseAddress, let dst = out.baseAddress {
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: bytes.count)
          }
        }
        count = n
      }
    }
    switch type {
    case .uint8: self = .uint8(bytes)
    case .uint16: self = .uint16(typed(UInt16.self))
    case .uint32: self = .uint32(typed(UInt32.self))
    case .float32: self = .float32(typed(Float.self))
    }
  }

  /// Appends the samples of `other`, which must have the same pixel type.
  public mutating func append(_ other: PixelStorage) {
    switch (self, other) {
    case (.uint8(var a), .uint8(let b)): a += b; self = .uint8(a)
    case (.uint16(var a), .uint16(let b)): a += b; self = .uint16(a)
    case (.uint32(var a), .uint32(let b)): a += b; self = .uint32(a)
    case (.float32(var a), .float32(let b)): a += b; self = .float32(a)
    default: preconditionFailure("cannot append \(other.pixelType) samples to \(pixelType) storage")
    }
  }

  /// Storage of `count` samples of `type` whose bytes `initialize` writes, every one of them
  /// (no zero fill first: for outputs a kernel overwrites anyway).
  public static func filled(
    _ type: PixelType, count: Int, by initialize: (UnsafeMutableRawBufferPointer) throws -> Void
  ) rethrows -> PixelStorage {
    func make<T>(_: T.Type) throws -> [T] {
      try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        try initialize(UnsafeMutableRawBufferPointer(buffer))
        initialized = count
      }
    }
    switch type {
    case .uint8: return .uint8(try make(UInt8.self))
    case .uint16: return .uint16(try make(UInt16.self))
    case .uint32: return .uint32(try make(UInt32.self))
    case .float32: return .float32(try make(Float.self))
    }
  }

  /// Zero-filled storage of `count` samples of `type`.
  public static func zeros(_ type: PixelType, count: Int) -> PixelStorage {
    switch type {
    case .uint8: .uint8([UInt8](repeating: 0, count: count))
    case .uint16: .uint16([UInt16](repeating: 0, count: count))
    case .uint32: .uint32([UInt32](repeating: 0, count: count))
    case .float32: .float32([Float](repeating: 0, count: count))
    }
  }
}

/// A 2-D image: `channels` planes of `height` rows of `width` samples (C × H × W, row-major).
///
/// A value type: copies share storage until one of them is written (Array's copy-on-write).
/// Label masks are images with one integer channel.
public struct Image: Sendable, Equatable {
  public private(set) var width: Int
  public private(set) var height: Int
  public private(set) var channels: Int
  public var storage: PixelStorage {
    didSet {
      precondition(
        storage.count == width * height * channels,
        "Image storage has \(storage.count) samples; \(channels)×\(height)×\(width) needs \(width * height * channels)"
      )
    }
  }

  /// Wraps planar samples. `storage.count` must equal `channels × height × width`.
  public init(width: Int, height: Int, channels: Int = 1, storage: PixelStorage) {
    precondition(width >= 0 && height >= 0 && channels >= 1, "bad image shape \(channels)×\(height)×\(width)")
    precondition(
      storage.count == width * height * channels,
      "Image storage has \(storage.count) samples; \(channels)×\(height)×\(width) needs \(width * height * channels)"
    )
    self.width = width
    self.height = height
    self.channels = channels
    self.storage = storage
  }

  /// A zero-filled image.
  public init(width: Int, height: Int, channels: Int = 1, type: PixelType) {
    self.init(
      width: width, height: height, channels: channels,
      storage: .zeros(type, count: width * height * channels))
  }

  public init(width: Int, height: Int, channels: Int = 1, pixels: [UInt8]) {
    self.init(width: width, height: height, channels: channels, storage: .uint8(pixels))
  }

  public init(width: Int, height: Int, channels: Int = 1, pixels: [UInt16]) {
    self.init(width: width, height: height, channels: channels, storage: .uint16(pixels))
  }

  public init(width: Int, height: Int, channels: Int = 1, pixels: [UInt32]) {
    self.init(width: width, height: height, channels: channels, storage: .uint32(pixels))
  }

  public init(width: Int, height: Int, channels: Int = 1, pixels: [Float]) {
    self.init(width: width, height: height, channels: channels, storage: .float32(pixels))
  }

  public var pixelType: PixelType { storage.pixelType }
  public var planeSize: Int { width * height }
  public var sampleCount: Int { width * height * channels }

  /// Sample `(c, y, x)` as a Double (any storage).
  public func value(channel c: Int = 0, y: Int, x: Int) -> Double {
    let i = (c * height + y) * width + x
    switch storage {
    case .uint8(let a): return Double(a[i])
    case .uint16(let a): return Double(a[i])
    case .uint32(let a): return Double(a[i])
    case .float32(let a): return Double(a[i])
    }
  }

  /// The smallest and largest sample (NaNs are skipped; nil when there is no finite sample).
  public var range: (min: Double, max: Double)? {
    func scan<T: BinaryInteger>(_ a: [T]) -> (Double, Double)? {
      guard var lo = a.first else { return nil }
      var hi = lo
      for v in a {
        if v < lo { lo = v }
        if v > hi { hi = v }
      }
      return (Double(lo), Double(hi))
    }
    switch storage {
    case .uint8(let a): return scan(a)
    case .uint16(let a): return scan(a)
    case .uint32(let a): return scan(a)
    case .float32(let a):
      var lo = Float.infinity
      var hi = -Float.infinity
      for v in a where v.isFinite {
        lo = Swift.min(lo, v)
        hi = Swift.max(hi, v)
      }
      return lo <= hi ? (Double(lo), Double(hi)) : nil
    }
  }

  /// The samples as Float, unscaled (a uint16 value 1000 becomes 1000.0).
  public func floatSamples() -> [Float] {
    switch storage {
    case .uint8(let a): return a.map { Float($0) }
    case .uint16(let a): return a.map { Float($0) }
    case .uint32(let a): return a.map { Float($0) }
    case .float32(let a): return a
    }
  }

  /// The samples as UInt32 label ids. Float samples are truncated toward zero and clamped to
  /// 0...UInt32.max (NaN → 0); label masks are integer images, so this is exact for them.
  public func labelSamples() -> [UInt32] {
    switch storage {
    case .uint8(let a): return a.map { UInt32($0) }
    case .uint16(let a): return a.map { UInt32($0) }
    case .uint32(let a): return a
    case .float32(let a):
      return a.map { v in
        guard v.isFinite, v > 0 else { return 0 }
        return v >= 4_294_967_296 ? UInt32.max : UInt32(v)
      }
    }
  }

  /// A float32 image with every sample multiplied by `scale` (1/255 maps uint8 to [0, 1]).
  public func toFloat32(scale: Float = 1) -> Image {
    var f = floatSamples()
    if scale != 1 {
      for i in f.indices { f[i] *= scale }
    }
    return Image(width: width, height: height, channels: channels, pixels: f)
  }

  /// Converts to `type`: integers widen exactly; narrowing and float → integer round to
  /// nearest and clamp to the target range (NaN → 0). No rescaling.
  public func converted(to type: PixelType) -> Image {
    if type == pixelType { return self }
    func narrow<S: BinaryInteger, T: FixedWidthInteger & UnsignedInteger>(_ a: [S], _: T.Type) -> [T] {
      a.map { T(clamping: $0) }
    }
    func fromFloat<T: FixedWidthInteger & UnsignedInteger>(_ a: [Float], _: T.Type) -> [T] {
      let top = Float(T.max)
      return a.map { v in
        guard v.isFinite, v > 0 else { return 0 }
        let r = v.rounded()
        return r >= top ? T.max : T(r)
      }
    }
    let s: PixelStorage
    switch (storage, type) {
    case (.float32(let a), .uint8): s = .uint8(fromFloat(a, UInt8.self))
    case (.float32(let a), .uint16): s = .uint16(fromFloat(a, UInt16.self))
    case (.float32(let a), .uint32): s = .uint32(fromFloat(a, UInt32.self))
    case (_, .float32): s = .float32(floatSamples())
    case (.uint8(let a), .uint16): s = .uint16(narrow(a, UInt16.self))
    case (.uint8(let a), .uint32): s = .uint32(narrow(a, UInt32.self))
    case (.uint16(let a), .uint8): s = .uint8(narrow(a, UInt8.self))
    case (.uint16(let a), .uint32): s = .uint32(narrow(a, UInt32.self))
    case (.uint32(let a), .uint8): s = .uint8(narrow(a, UInt8.self))
    case (.uint32(let a), .uint16): s = .uint16(narrow(a, UInt16.self))
    default: s = storage
    }
    return Image(width: width, height: height, channels: channels, storage: s)
  }

  /// Sample `i` of the flat planar storage as a Double.
  @inline(__always)
  public func sampleDouble(_ i: Int) -> Double {
    switch storage {
    case .uint8(let a): Double(a[i])
    case .uint16(let a): Double(a[i])
    case .uint32(let a): Double(a[i])
    case .float32(let a): Double(a[i])
    }
  }

  /// Channel `c` as a one-channel image.
  public func channel(_ c: Int) -> Image {
    precondition(c >= 0 && c < channels, "channel \(c) out of 0..<\(channels)")
    let r = (c * planeSize)..<((c + 1) * planeSize)
    let s: PixelStorage
    switch storage {
    case .uint8(let a): s = .uint8(Array(a[r]))
    case .uint16(let a): s = .uint16(Array(a[r]))
    case .uint32(let a): s = .uint32(Array(a[r]))
    case .float32(let a): s = .float32(Array(a[r]))
    }
    return Image(width: width, height: height, channels: 1, storage: s)
  }

  /// Whether `images` can be stacked: at least one, all of the same size and pixel type.
  public static func canStack(_ images: [Image]) -> Bool {
    guard let first = images.first else { return false }
    return images.allSatisfy { $0.width == first.width && $0.height == first.height && $0.pixelType == first.pixelType }
  }

  /// Stacks images of the same size and type as channels, in order (check `canStack` first
  /// for images that come from files).
  public static func stack(_ images: [Image]) -> Image {
    precondition(canStack(images), "Image.stack needs at least one image, all of one size and pixel type")
    let first = images[0]
    var s = PixelStorage.zeros(first.pixelType, count: 0)
    for image in images { s.append(image.storage) }
    let channels = images.reduce(0) { $0 + $1.channels }
    return Image(width: first.width, height: first.height, channels: channels, storage: s)
  }

  /// Interleaved samples (H × W × C) of a uint8 or uint16 image, as encoders want them.
  public func interleavedBytes() -> [UInt8] {
    let n = planeSize
    let bw = pixelType.byteWidth
    var out = [UInt8](repeating: 0, count: sampleCount * bw)
    out.withUnsafeMutableBytes { dst in
      func fill<T>(_ a: [T]) {
        a.withUnsafeBufferPointer { src in
          let d = dst.bindMemory(to: T.self)
          for c in 0..<channels {
            for i in 0..<n { d[i * channels + c] = src[c * n + i] }
          }
        }
      }
      switch storage {
      case .uint8(let a): fill(a)
      case .uint16(let a): fill(a)
      case .uint32(let a): fill(a)
      case .float32(let a): fill(a)
      }
    }
    return out
  }

  /// Planar bytes of the samples in host byte order.
  public func planarBytes() -> [UInt8] {
    switch storage {
    case .uint8(let a): return a
    case .uint16(let a): return a.withUnsafeBytes { Array($0) }
    case .uint32(let a): return a.withUnsafeBytes { Array($0) }
    case .float32(let a): return a.withUnsafeBytes { Array($0) }
    }
  }
}
