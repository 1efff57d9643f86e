import SegCore

/// A safetensors file writer (huggingface/safetensors): an 8-byte little-endian header length
/// N, N bytes of JSON header, then the tensors' bytes back to back.
///
/// The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
/// (offsets into the data section, which the tensors cover in order with no gaps) and may
/// hold `"__metadata__"`: a string → string map. The header is padded with spaces to a
/// multiple of 8 bytes so the data starts aligned, as the reference writer does. Tensors are
/// little-endian and row-major (C order).
public struct SafetensorsWriter: Sendable {
  /// The element types this writer emits (safetensors dtype names).
  public enum DType: String, Sendable {
    case float32 = "F32"
    case int64 = "I64"

    var size: Int { self == .float32 ? 4 : 8 }
  }

  struct Entry {
    var name: String
    var dtype: DType
    var shape: [Int]
    var data: [UInt8]
  }

  private var entries: [Entry] = []
  /// `__metadata__`, in order.
  public var metadata: [(String, String)] = []

  public init() {}

  /// The tensor names, in file order.
  public var names: [String] { entries.map(\.name) }

  /// Adds a float32 tensor (shape [] is a scalar).
  public mutating func add(_ name: String, floats: [Float], shape: [Int]) {
    precondition(shape.reduce(1, *) == floats.count, "SafetensorsWriter \(name): \(floats.count) values for shape \(shape)")
    append(Entry(name: name, dtype: .float32, shape: shape, data: littleEndianBytes(floats)))
  }

  /// Adds an int64 tensor (shape [] is a scalar).
  public mutating func add(_ name: String, int64s: [Int64], shape: [Int]) {
    precondition(shape.reduce(1, *) == int64s.count, "SafetensorsWriter \(name): \(int64s.count) values for shape \(shape)")
    var data: [UInt8] = []
    for v in int64s { appendLittleEndian(&data, UInt64(bitPattern: v), bytes: 8) }
    append(Entry(name: name, dtype: .int64, shape: shape, data: data))
  }

  private mutating func append(_ e: Entry) {
    precondition(e.name != "__metadata__" && !names.contains(e.name), "SafetensorsWriter: duplicate or reserved name \(e.name)")
    entries.append(e)
  }

  /// The JSON header (before padding).
  public func header() -> String {
    var fields: [(String, JSONValue)] = []
    if !metadata.isEmpty { fields.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
    var offset = 0
    for e in entries {
      fields.append((e.name, .object([
        ("dtype", .string(e.dtype.rawValue)), ("shape", .array(e.shape.map { .int($0) })),
        ("data_offsets", .array([.int(offset), .int(offset + e.data.count)])),
      ])))
      offset += e.data.count
    }
    return JSONValue.object(fields).serialized(spaced: false)
  }

  /// The file's bytes.
  public func encoded() -> [UInt8] {
    var json = Array(header().utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    var out: [UInt8] = []
    out.reserveCapacity(8 + json.count + entries.reduce(0) { $0 + $1.data.count })
    appendLittleEndian(&out, UInt64(json.count), bytes: 8)
    out += json
    for e in entries { out += e.data }
    return out
  }
}
