/// A protocol-buffer encoder: the binary wire format (varints, tags, length-delimited fields)
/// that ONNX files use, written directly with no generated code.
///
/// A field is a tag `field << 3 | wire type` (as a varint) followed by its value: wire type 0
/// is a varint (int32/int64/enum/bool; a negative int64 is its two's complement, 10 bytes),
/// 2 is length-delimited (a varint byte count, then the bytes: strings, bytes, nested
/// messages, packed repeated scalars), 5 is a 32-bit little-endian value (float). Fields may
/// come in any order; we write them in field-number order as protoc does.
/// (https://protobuf.dev/programming-guides/encoding/)
public struct ProtobufWriter: Sendable {
  /// The encoded message so far.
  public private(set) var bytes: [UInt8] = []

  public init() {}

  public enum WireType: UInt64, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
  }

  /// Appends `v` as a base-128 varint (7 bits per byte, least significant group first, the
  /// high bit set on every byte but the last).
  public mutating func varint(_ v: UInt64) {
    var v = v
    while v >= 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
      v >>= 7
    }
    bytes.append(UInt8(v))
  }

  /// Appends the tag of field `field` with wire type `type`.
  public mutating func tag(_ field: Int, _ type: WireType) {
    precondition(field >= 1 && field < 1 << 29, "ProtobufWriter: field number \(field) out of range")
    varint(UInt64(field) << 3 | type.rawValue)
  }

  /// An int32/int64/enum field (negative values as 10-byte two's complement).
  public mutating func int(_ field: Int, _ v: Int64) {
    tag(field, .varint)
    varint(UInt64(bitPattern: v))
  }

  /// A length-delimited field holding `value`.
  public mutating func bytes(_ field: Int, _ value: [UInt8]) {
    tag(field, .lengthDelimited)
    varint(UInt64(value.count))
    bytes += value
  }

  /// A string field (UTF-8).
  public mutating func string(_ field: Int, _ s: String) {
    bytes(field, Array(s.utf8))
  }

  /// A float field (32-bit IEEE 754, little-endian).
  public mutating func float(_ field: Int, _ f: Float) {
    tag(field, .fixed32)
    appendLittleEndian(f.bitPattern)
  }

  /// A nested message field: `build` writes the message's own fields.
  public mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
    var inner = ProtobufWriter()
    build(&inner)
    bytes(field, inner.bytes)
  }

  /// A packed repeated int64 field (one length-delimited run of varints).
  public mutating func packedInts(_ field: Int, _ values: [Int64]) {
    var inner = ProtobufWriter()
    for v in values { inner.varint(UInt64(bitPattern: v)) }
    bytes(field, inner.bytes)
  }

  /// A packed repeated float field (one length-delimited run of 4-byte values).
  public mutating func packedFloats(_ field: Int, _ values: [Float]) {
    var inner = ProtobufWriter()
    for v in values { inner.appendLittleEndian(v.bitPattern) }
    bytes(field, inner.bytes)
  }

  mutating func appendLittleEndian(_ v: UInt32) {
    for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
  }
}
