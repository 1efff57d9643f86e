import SegCore

/// A numpy `.npy` array: dtype, shape and the raw little-endian C-order bytes.
///
/// Writes format version 1.0 (2.0 when the header exceeds 65535 bytes), with the header padded
/// so the data starts at a multiple of 64 bytes, as numpy does. Reads versions 1, 2 and 3,
/// either byte order (big-endian data is swapped) and Fortran order (transposed to C order).
/// Spec: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
public struct NpyArray: Sendable, Equatable {
  public enum DType: String, Sendable, CaseIterable, Codable {
    case bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64, float16, float32, float64

    /// Bytes per element.
    public var size: Int {
      switch self {
      case .bool, .int8, .uint8: 1
      case .int16, .uint16, .float16: 2
      case .int32, .uint32, .float32: 4
      case .int64, .uint64, .float64: 8
      }
    }

    /// numpy's type string for little-endian data ("|u1", "<f4", …).
    public var descr: String {
      switch self {
      case .bool: "|b1"
      case .int8: "|i1"
      case .uint8: "|u1"
      case .int16: "<i2"
      case .uint16: "<u2"
      case .int32: "<i4"
      case .uint32: "<u4"
      case .int64: "<i8"
      case .uint64: "<u8"
      case .float16: "<f2"
      case .float32: "<f4"
      case .float64: "<f8"
      }
    }

    /// Parses a type string; returns the dtype and whether the data is big-endian.
    static func parse(_ descr: String) -> (DType, bigEndian: Bool)? {
      guard descr.count == 3, let order = descr.first else { return nil }
      let code = String(descr.dropFirst())
      let table: [String: DType] = [
        "b1": .bool, "i1": .int8, "u1": .uint8, "i2": .int16, "u2": .uint16, "i4": .int32,
        "u4": .uint32, "i8": .int64, "u8": .uint64, "f2": .float16, "f4": .float32, "f8": .float64,
      ]
      guard let t = table[code], "<>|=".contains(order) else { return nil }
      return (t, order == ">" && t.size > 1)
    }
  }

  public var dtype: DType
  public var shape: [Int]
  /// Element bytes, little-endian, C order.
  public var data: [UInt8]

  public init(dtype: DType, shape: [Int], data: [UInt8]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    precondition(data.count == shape.reduce(1, *) * dtype.size, "npy data size does not match shape \(shape) × \(dtype)")
    self.dtype = dtype
    self.shape = shape
    self.data = data
  }

  public var count: Int { shape.reduce(1, *) }

  /// An array from typed values (the element type must match `dtype`'s size).
  public init<T: BitwiseCopyable>(dtype: DType, shape: [Int], values: [T]) {
    precondition(MemoryLayout<T>.size == dtype.size, "element type does not match \(dtype)")
    self.init(dtype: dtype, shape: shape, data: values.withUnsafeBytes { Array($0) })
  }

  /// The image as a C × H × W array (H × W when `squeeze` and the image has one channel),
  /// converted to `dtype`: float16 rounds to nearest even; integer targets round and clamp.
  public init(image: Image, dtype: DType, squeeze: Bool = false) {
    let shape = squeeze && image.channels == 1 ? [image.height, image.width] : [image.channels, image.height, image.width]
    switch (dtype, image.storage) {
    case (.uint8, .uint8(let a)): self.init(dtype: dtype, shape: shape, values: a)
    case (.uint16, .uint16(let a)): self.init(dtype: dtype, shape: shape, values: a)
    case (.uint32, .uint32(let a)): self.init(dtype: dtype, shape: shape, values: a)
    case (.float32, .float32(let a)): self.init(dtype: dtype, shape: shape, values: a)
    case (.float16, _): self.init(dtype: dtype, shape: shape, values: image.floatSamples().map { floatToHalf($0) })
    case (.float32, _): self.init(dtype: dtype, shape: shape, values: image.floatSamples())
    case (.float64, _): self.init(dtype: dtype, shape: shape, values: image.floatSamples().map { Double($0) })
    case (.uint8, _): self.init(dtype: dtype, shape: shape, values: image.converted(to: .uint8).labelSamples().map { UInt8($0) })
    case (.uint16, _): self.init(dtype: dtype, shape: shape, values: image.converted(to: .uint16).labelSamples().map { UInt16($0) })
    case (.uint32, _): self.init(dtype: dtype, shape: shape, values: image.converted(to: .uint32).labelSamples())
    case (.int32, _):
      self.init(dtype: dtype, shape: shape, values: image.converted(to: .uint32).labelSamples().map { Int32(clamping: $0) })
    case (.bool, _): self.init(dtype: dtype, shape: shape, values: image.floatSamples().map { $0 != 0 ? UInt8(1) : 0 })
    case (.int8, _): self.init(dtype: dtype, shape: shape, values: image.floatSamples().map { Int8(clamping: Int(($0.isFinite ? $0 : 0).rounded())) })
    case (.int16, _): self.init(dtype: dtype, shape: shape, values: image.floatSamples().map { Int16(clamping: Int(($0.isFinite ? $0 : 0).rounded())) })
    case (.int64, _): self.init(dtype: dtype, shape: shape, values: image.labelSamples().map { Int64($0) })
    case (.uint64, _): self.init(dtype: dtype, shape: shape, values: image.labelSamples().map { UInt64($0) })
    }
  }

  /// Every element as Double.
  public func doubles() -> [Double] {
    data.withUnsafeBytes { raw -> [Double] in
      func map<T>(_: T.Type, _ f: (T) -> Double) -> [Double] { raw.bindMemory(to: T.self).map(f) }
      switch dtype {
      case .bool, .uint8: return map(UInt8.self) { Double($0) }
      case .int8: return map(Int8.self) { Double($0) }
      case .int16: return map(Int16.self) { Double($0) }
      case .uint16: return map(UInt16.self) { Double($0) }
      case .int32: return map(Int32.self) { Double($0) }
      case .uint32: return map(UInt32.self) { Double($0) }
      case .int64: return map(Int64.self) { Double($0) }
      case .uint64: return map(UInt64.self) { Double($0) }
      case .float16: return map(UInt16.self) { Double(halfToFloat($0)) }
      case .float32: return map(Float.self) { Double($0) }
      case .float64: return map(Double.self) { $0 }
      }
    }
  }

  /// Every element as Float (float64 rounds).
  public func floats() -> [Float] {
    switch dtype {
    case .float32: return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    case .float16: return data.withUnsafeBytes { $0.bindMemory(to: UInt16.self).map { halfToFloat($0) } }
    case .uint8: return data.map { Float($0) }
    default: return doubles().map { Float($0) }
    }
  }

  /// The typed elements, when `T` matches the dtype's size (no conversion).
  public func values<T: BitwiseCopyable>(as _: T.Type) -> [T] {
    precondition(MemoryLayout<T>.size == dtype.size, "element type does not match \(dtype)")
    return data.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
  }

  /// The whole `.npy` file.
  public func encoded() -> [UInt8] {
    let shapeText: String
    switch shape.count {
    case 0: shapeText = "()"
    case 1: shapeText = "(\(shape[0]),)"
    default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }
    var header = "{'descr': '\(dtype.descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    // numpy leaves room for the first axis to grow to 21 digits (GROWTH_AXIS_MAX_DIGITS), so
    // its files can be appended to in place; doing the same makes our headers byte-identical.
    if let first = shape.first { header += String(repeating: " ", count: max(0, 21 - String(first).count)) }
    var version: UInt8 = 1
    var prefix = 10
    if header.utf8.count + 1 + 10 > 65535 {
      version = 2
      prefix = 12
    }
    let unpadded = prefix + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    out.reserveCapacity(prefix + header.utf8.count + data.count)
    let n = header.utf8.count
    if version == 1 {
      out += [UInt8(n & 0xFF), UInt8(n >> 8)]
    } else {
      out += [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
    }
    out += Array(header.utf8)
    out += data
    return out
  }

  /// Parses a whole `.npy` file.
  public static func decode(_ bytes: [UInt8]) throws(ImageIOError) -> NpyArray {
    let (header, offset) = try parseHeader(bytes)
    var count = 1
    for d in header.shape {
      let (product, overflow) = count.multipliedReportingOverflow(by: d)
      guard !overflow else { throw ImageIOError(.corrupt, "npy shape \(header.shape) is too large") }
      count = product
    }
    let needed = count.multipliedReportingOverflow(by: header.dtype.size)
    guard !needed.overflow else { throw ImageIOError(.corrupt, "npy shape \(header.shape) is too large") }
    guard bytes.count - offset >= needed.partialValue else {
      throw ImageIOError(.truncated, "npy data has \(bytes.count - offset) bytes; shape \(header.shape) of \(header.dtype.rawValue) needs \(needed.partialValue)")
    }
    var data = Array(bytes[offset..<(offset + needed.partialValue)])
    if header.bigEndian {
      let w = header.dtype.size
      for i in stride(from: 0, to: data.count, by: w) { data[i..<(i + w)].reverse() }
    }
    var array = NpyArray(dtype: header.dtype, shape: header.shape, data: data)
    if header.fortran && header.shape.count > 1 { array = array.fromFortranOrder() }
    return array
  }

  struct Header {
    var dtype: DType
    var bigEndian: Bool
    var fortran: Bool
    var shape: [Int]
  }

  /// Parses the magic, version and header dictionary; returns the header and the data offset.
  static func parseHeader(_ bytes: [UInt8]) throws(ImageIOError) -> (Header, Int) {
    guard bytes.count >= 10, ImageFormat.sniff(bytes) == .npy else {
      throw ImageIOError(bytes.count < 10 ? .truncated : .corrupt, "not a .npy file (bad magic)")
    }
    let major = bytes[6]
    let length: Int
    let start: Int
    switch major {
    case 1:
      length = Int(bytes[8]) | Int(bytes[9]) << 8
      start = 10
    case 2, 3:
      guard bytes.count >= 12 else { throw ImageIOError(.truncated, "npy header is cut off") }
      length = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
      start = 12
    default:
      throw ImageIOError(.unsupported, "npy format version \(major)")
    }
    guard bytes.count >= start + length else { throw ImageIOError(.truncated, "npy header is cut off") }
    let text = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
    var parser = PyLiteralParser(text)
    guard case .dict(let dict)? = try? parser.parse() else {
      throw ImageIOError(.corrupt, "npy header is not a Python dict: \(text.prefix(80))")
    }
    guard case .string(let descr)? = dict["descr"], let (dtype, big) = DType.parse(descr) else {
      throw ImageIOError(.unsupported, "npy dtype \(dict["descr"].map { "\($0)" } ?? "missing") (supported: bool, int8…uint64, float16/32/64)")
    }
    guard case .bool(let fortran)? = dict["fortran_order"] else {
      throw ImageIOError(.corrupt, "npy header has no fortran_order")
    }
    guard case .tuple(let dims)? = dict["shape"] else { throw ImageIOError(.corrupt, "npy header has no shape") }
    var shape: [Int] = []
    for d in dims {
      guard case .int(let v) = d, v >= 0 else { throw ImageIOError(.corrupt, "npy shape has a bad dimension") }
      shape.append(v)
    }
    return (Header(dtype: dtype, bigEndian: big, fortran: fortran, shape: shape), start + length)
  }

  /// The same values in C order, from data laid out in Fortran order.
  func fromFortranOrder() -> NpyArray {
    let n = shape.count
    let w = dtype.size
    // Fortran strides (in elements): stride[0] = 1, stride[k] = stride[k-1] * shape[k-1].
    var fstride = [Int](repeating: 1, count: n)
    for k in 1..<n { fstride[k] = fstride[k - 1] * shape[k - 1] }
    var out = [UInt8](repeating: 0, count: data.count)
    var index = [Int](repeating: 0, count: n)
    for c in 0..<count {
      var f = 0
      for k in 0..<n { f += index[k] * fstride[k] }
      for b in 0..<w { out[c * w + b] = data[f * w + b] }
      var k = n - 1
      while k >= 0 {
        index[k] += 1
        if index[k] < shape[k] { break }
        index[k] = 0
        k -= 1
      }
    }
    return NpyArray(dtype: dtype, shape: shape, data: out)
  }

  /// Reads an `.npy` holding H × W or C × H × W as an image: uint8/uint16/uint32 stay, bool
  /// becomes uint8, non-negative int32/int64 and other integers become uint32 when they fit,
  /// everything else float32.
  static func decodeImage(_ bytes: [UInt8], options: DecodeOptions) throws(ImageIOError) -> DecodedImage {
    let (header, _) = try parseHeader(bytes)
    let dims = header.shape
    guard dims.count == 2 || dims.count == 3 else {
      throw ImageIOError(.unsupported, "npy shape \(dims) is not H × W or C × H × W")
    }
    let (c, h, w) = dims.count == 2 ? (1, dims[0], dims[1]) : (dims[0], dims[1], dims[2])
    guard c >= 1 && h >= 1 && w >= 1 else { throw ImageIOError(.unsupported, "npy shape \(dims) holds no pixels") }
    try ImageDecoder.checkBudget(width: w, height: h, pages: c, options: options)
    let array = try decode(bytes)
    let image: Image
    switch array.dtype {
    case .uint8, .bool: image = Image(width: w, height: h, channels: c, pixels: array.data)
    case .uint16: image = Image(width: w, height: h, channels: c, pixels: array.values(as: UInt16.self))
    case .uint32: image = Image(width: w, height: h, channels: c, pixels: array.values(as: UInt32.self))
    case .int8, .int16, .int32, .int64, .uint64:
      let v = array.doubles()
      if v.allSatisfy({ $0 >= 0 && $0 <= 4_294_967_295 }) {
        image = Image(width: w, height: h, channels: c, pixels: v.map { UInt32($0) })
      } else {
        image = Image(width: w, height: h, channels: c, pixels: v.map { Float($0) })
      }
    case .float16, .float32, .float64: image = Image(width: w, height: h, channels: c, pixels: array.floats())
    }
    return DecodedImage(
      format: .npy, pages: [image], bitsPerSample: array.dtype.size * 8,
      colorModel: c == 1 ? "gray" : "multi", details: ["dtype \(array.dtype.rawValue)", "shape \(dims)"])
  }
}

/// A tiny parser for the Python literals in an .npy header: dicts, tuples, strings, ints and
/// booleans.
struct PyLiteralParser {
  enum Value: Equatable, CustomStringConvertible {
    case dict([String: Value])
    case tuple([Value])
    case string(String)
    case int(Int)
    case bool(Bool)
    case none

    var description: String {
      switch self {
      case .string(let s): "'\(s)'"
      case .int(let i): "\(i)"
      case .bool(let b): b ? "True" : "False"
      case .none: "None"
      case .tuple(let t): "(\(t.map(\.description).joined(separator: ", ")))"
      case .dict(let d): "{\(d.map { "'\($0)': \($1)" }.joined(separator: ", "))}"
      }
    }
  }

  struct Failure: Error {}

  private let chars: [Character]
  private var i = 0
  private var depth = 0
  /// Deeper nesting than an .npy header ever has (its shape tuple sits in a dict) is refused,
  /// so a hostile header cannot exhaust the stack.
  static let maxDepth = 16

  init(_ text: String) { chars = Array(text) }

  mutating func parse() throws -> Value {
    let v = try value()
    skipSpace()
    return v
  }

  private mutating func skipSpace() {
    while i < chars.count, chars[i].isWhitespace { i += 1 }
  }

  private mutating func value() throws -> Value {
    skipSpace()
    guard i < chars.count else { throw Failure() }
    let opens = chars[i] == "{" || chars[i] == "(" || chars[i] == "["
    if opens {
      depth += 1
      guard depth <= Self.maxDepth else { throw Failure() }
    }
    defer { if opens { depth -= 1 } }
    switch chars[i] {
    case "{":
      i += 1
      var d: [String: Value] = [:]
      while true {
        skipSpace()
        guard i < chars.count else { throw Failure() }
        if chars[i] == "}" { i += 1; return .dict(d) }
        guard case .string(let key) = try value() else { throw Failure() }
        skipSpace()
        guard i < chars.count, chars[i] == ":" else { throw Failure() }
        i += 1
        d[key] = try value()
        skipSpace()
        if i < chars.count, chars[i] == "," { i += 1 }
      }
    case "(", "[":
      let close: Character = chars[i] == "(" ? ")" : "]"
      i += 1
      var items: [Value] = []
      while true {
        skipSpace()
        guard i < chars.count else { throw Failure() }
        if chars[i] == close { i += 1; return .tuple(items) }
        items.append(try value())
        skipSpace()
        if i < chars.count, chars[i] == "," { i += 1 }
      }
    case "'", "\"":
      let quote = chars[i]
      i += 1
      var s = ""
      while i < chars.count, chars[i] != quote {
        s.append(chars[i])
        i += 1
      }
      guard i < chars.count else { throw Failure() }
      i += 1
      return .string(s)
    default:
      var word = ""
      while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "-" || chars[i] == "_" {
        word.append(chars[i])
        i += 1
      }
      if word == "True" { return .bool(true) }
      if word == "False" { return .bool(false) }
      if word == "None" { return .none }
      if word.hasSuffix("L") { word.removeLast() }
      guard let n = Int(word) else { throw Failure() }
      return .int(n)
    }
  }
}
