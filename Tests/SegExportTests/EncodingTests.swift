import SegCore
@testable import SegExport
import Testing

/// A protocol-buffer reader for the tests (independent of the writer): a message as its
/// fields in order, each a varint, a 32-bit value or a length-delimited byte run.
struct Fields {
  enum Value: Equatable {
    case varint(UInt64)
    case fixed32(UInt32)
    case bytes([UInt8])
  }

  var items: [(field: Int, value: Value)] = []

  init(_ b: [UInt8]) {
    var i = 0
    func varint() -> UInt64 {
      var v: UInt64 = 0
      var shift: UInt64 = 0
      while true {
        let byte = b[i]
        i += 1
        v |= UInt64(byte & 0x7F) << shift
        if byte < 0x80 { return v }
        shift += 7
      }
    }
    while i < b.count {
      let tag = varint()
      let field = Int(tag >> 3)
      switch tag & 7 {
      case 0: items.append((field, .varint(varint())))
      case 2:
        let n = Int(varint())
        items.append((field, .bytes(Array(b[i..<(i + n)]))))
        i += n
      case 5:
        items.append((field, .fixed32(UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)))
        i += 4
      default: preconditionFailure("unexpected wire type \(tag & 7)")
      }
    }
  }

  func all(_ field: Int) -> [Value] { items.filter { $0.field == field }.map(\.value) }
  func messages(_ field: Int) -> [Fields] { all(field).compactMap { if case .bytes(let b) = $0 { Fields(b) } else { nil } } }
  func strings(_ field: Int) -> [String] { all(field).compactMap { if case .bytes(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } } }
  func ints(_ field: Int) -> [Int64] { all(field).compactMap { if case .varint(let v) = $0 { Int64(bitPattern: v) } else { nil } } }
  func string(_ field: Int) -> String? { strings(field).first }
  func int(_ field: Int) -> Int64? { ints(field).first }
}

@Suite struct ProtobufTests {
  static let varintCases: [(UInt64, [UInt8])] = [
    (0, [0]), (1, [1]), (127, [0x7F]), (128, [0x80, 0x01]), (150, [0x96, 0x01]), (300, [0xAC, 0x02]),
    (UInt64.max, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
  ]

  @Test(arguments: varintCases)
  func varints(value: UInt64, expected: [UInt8]) {
    var w = ProtobufWriter()
    w.varint(value)
    #expect(w.bytes == expected)
  }

  /// The examples of the protobuf encoding guide.
  @Test func knownEncodings() {
    var w = ProtobufWriter()
    w.int(1, 150)
    #expect(w.bytes == [0x08, 0x96, 0x01])
    w = ProtobufWriter()
    w.string(2, "testing")
    #expect(w.bytes == [0x12, 0x07] + Array("testing".utf8))
    w = ProtobufWriter()
    w.message(3) { $0.int(1, 150) }
    #expect(w.bytes == [0x1A, 0x03, 0x08, 0x96, 0x01])
    w = ProtobufWriter()
    w.packedInts(4, [3, 270, 86942])
    #expect(w.bytes == [0x22, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05])
    w = ProtobufWriter()
    w.int(1, -1)
    #expect(w.bytes == [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
    w = ProtobufWriter()
    w.float(2, 1)
    #expect(w.bytes == [0x15, 0x00, 0x00, 0x80, 0x3F])
    w = ProtobufWriter()
    w.packedFloats(1, [1, -2])
    #expect(w.bytes == [0x0A, 0x08, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0])
  }

  /// A TensorProto and an AttributeProto byte for byte (fields in onnx.proto numbering).
  @Test func onnxMessagesByteForByte() {
    var w = ProtobufWriter()
    ONNX.Tensor(name: "w", floats: [1, 2], shape: [2]).encode(&w)
    // dims 2 (field 1), data_type FLOAT (2), name "w" (8), raw_data (9).
    #expect(w.bytes == [0x08, 0x02, 0x10, 0x01, 0x42, 0x01, 0x77, 0x4A, 0x08, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40])
    w = ProtobufWriter()
    ONNX.Attribute.ints([2, 3]).encode(name: "k", &w)
    // name "k" (1), ints 2, 3 unpacked (8), type INTS = 7 (20 → tag 0xA0 0x01).
    #expect(w.bytes == [0x0A, 0x01, 0x6B, 0x40, 0x02, 0x40, 0x03, 0xA0, 0x01, 0x07])
    w = ProtobufWriter()
    ONNX.Attribute.float(0.5).encode(name: "e", &w)
    #expect(w.bytes == [0x0A, 0x01, 0x65, 0x15, 0x00, 0x00, 0x00, 0x3F, 0xA0, 0x01, 0x01])
  }

  /// A whole model read back field by field.
  @Test func modelDecodesBack() {
    var g = ONNX.GraphBuilder(reserving: ["x", "y"])
    let w = g.constant("w", floats: [1, 2, 3, 4], shape: [1, 1, 2, 2])
    g.add("Conv", ["x", w], [("kernel_shape", .ints([2, 2]))], name: "conv")
    g.renameLastOutput(to: "y")
    let graph = ONNX.Graph(
      name: "g", nodes: g.nodes, initializers: g.initializers,
      inputs: [ONNX.ValueInfo(name: "x", shape: [.parameter("batch"), .value(1), .parameter("h"), .parameter("w")])],
      outputs: [ONNX.ValueInfo(name: "y", shape: [.parameter("batch"), .value(1), .parameter("h2"), .parameter("w2")])])
    let bytes = ONNX.Model(graph: graph, producerName: "p", producerVersion: "1", metadata: [("k", "v")]).encoded()
    let m = Fields(bytes)
    #expect(m.int(1) == 8)
    #expect(m.string(2) == "p" && m.string(3) == "1")
    let opset = m.messages(8)
    #expect(opset.count == 1 && opset[0].string(1) == "" && opset[0].int(2) == 17)
    #expect(m.messages(14).map { [$0.string(1), $0.string(2)] } == [["k", "v"]])
    let gp = m.messages(7)[0]
    #expect(gp.string(2) == "g")
    let node = gp.messages(1)[0]
    #expect(node.strings(1) == ["x", "w"] && node.strings(2) == ["y"] && node.string(3) == "conv" && node.string(4) == "Conv")
    let attribute = node.messages(5)[0]
    #expect(attribute.string(1) == "kernel_shape" && attribute.ints(8) == [2, 2] && attribute.int(20) == 7)
    let tensor = gp.messages(5)[0]
    #expect(tensor.ints(1) == [1, 1, 2, 2] && tensor.int(2) == 1 && tensor.string(8) == "w")
    #expect(tensor.all(9) == [.bytes([1, 2, 3, 4].flatMap { (f: Float) in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) })])
    let input = gp.messages(11)[0]
    #expect(input.string(1) == "x")
    let dims = input.messages(2)[0].messages(1)[0].messages(2)[0].messages(1)
    #expect(dims.map { $0.string(2) ?? String($0.int(1) ?? -1) } == ["batch", "1", "h", "w"])
    #expect(input.messages(2)[0].messages(1)[0].int(1) == 1)  // elem_type FLOAT
  }
}

@Suite struct ZipTests {
  @Test func crcCheckValues() {
    #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    #expect(CRC32.checksum([]) == 0)
    #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
    let a = Array("hello ".utf8), b = Array("world".utf8)
    #expect(CRC32.checksum(b, continuing: CRC32.checksum(a)) == CRC32.checksum(a + b))
  }

  @Test func archiveStructure() throws {
    var z = ZipWriter()
    try z.add("rdf.yaml", Array("type: model\n".utf8))
    try z.add("dir/ü.bin", [0, 1, 2, 255])
    let bytes = try z.encoded()
    #expect(try z.encoded() == bytes)  // deterministic: no clock, no randomness
    let members = try ZipReader(bytes).members
    #expect(members.map(\.name) == ["rdf.yaml", "dir/ü.bin"])
    #expect(members.map(\.data) == [Array("type: model\n".utf8), [0, 1, 2, 255]])
  }
}

/// A zip reader for the tests: walks the central directory and checks each local header
/// against it (signature, CRC, sizes, name).
struct ZipReader {
  struct Member {
    var name: String
    var data: [UInt8]
  }

  struct Bad: Error, CustomStringConvertible {
    var description: String
  }

  var members: [Member] = []

  init(_ b: [UInt8]) throws {
    func u16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
    let end = b.count - 22
    guard end >= 0, u32(end) == 0x0605_4B50, u16(end + 20) == 0 else { throw Bad(description: "no end record") }
    let count = u16(end + 10)
    var p = u32(end + 16)
    guard p + u32(end + 12) == end else { throw Bad(description: "directory size/offset") }
    for _ in 0..<count {
      guard u32(p) == 0x0201_4B50, u16(p + 10) == 0 else { throw Bad(description: "central header") }
      let crc = u32(p + 16), size = u32(p + 20), nameLength = u16(p + 28), offset = u32(p + 42)
      guard u32(p + 24) == size else { throw Bad(description: "stored sizes differ") }
      let name = Array(b[(p + 46)..<(p + 46 + nameLength)])
      guard u32(offset) == 0x0403_4B50, u32(offset + 14) == crc, u32(offset + 18) == size, u16(offset + 26) == nameLength,
        Array(b[(offset + 30)..<(offset + 30 + nameLength)]) == name
      else { throw Bad(description: "local header of \(String(decoding: name, as: UTF8.self))") }
      let start = offset + 30 + nameLength + u16(offset + 28)
      let data = Array(b[start..<(start + size)])
      guard Int(CRC32.checksum(data)) == crc else { throw Bad(description: "CRC") }
      members.append(Member(name: String(decoding: name, as: UTF8.self), data: data))
      p += 46 + nameLength + u16(p + 30) + u16(p + 32)
    }
  }

  func data(_ name: String) -> [UInt8]? { members.first { $0.name == name }?.data }
}

@Suite struct SafetensorsAndYAMLTests {
  @Test func safetensorsLayout() {
    var w = SafetensorsWriter()
    w.add("a", floats: [1, 2], shape: [2])
    w.add("n", int64s: [7], shape: [])
    w.metadata = [("format", "pt")]
    let header = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"n":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}"#
    #expect(w.header() == header)
    let bytes = w.encoded()
    let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    #expect(n % 8 == 0 && n >= header.utf8.count && n < header.utf8.count + 8)
    #expect(String(decoding: bytes[8..<(8 + n)], as: UTF8.self) == header + String(repeating: " ", count: n - header.utf8.count))
    #expect(Array(bytes[(8 + n)...]) == [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40, 7, 0, 0, 0, 0, 0, 0, 0])
  }

  @Test func yamlDocument() {
    let doc: JSONValue = .object([
      ("type", "model"), ("version", 3), ("gain", 1e-6), ("tags", .array(["a", "no"])),
      ("inputs", .array([.object([("id", "input"), ("axes", .array([.object([("type", "batch")]), .object([("type", "space"), ("size", .object([("min", 4)]))])]))])])),
      ("empty", .object([])), ("odd key", .null),
    ])
    #expect(YAMLWriter.document(doc) == """
      type: "model"
      version: 3
      gain: 1.0e-06
      tags: ["a", "no"]
      inputs:
        - id: "input"
          axes:
            - type: "batch"
            - type: "space"
              size:
                min: 4
      empty: {}
      "odd key": null

      """)
  }
}
