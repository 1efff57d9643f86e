/// ONNX models (onnx/onnx `onnx.proto`, proto2 syntax): the messages an inference graph
/// needs, encoded with ``ProtobufWriter``. Network-agnostic: a lowering (``UNetLowering``)
/// adds nodes and initialisers through ``ONNX/GraphBuilder``.
///
/// Field numbers used (onnx.proto): ModelProto ir_version 1, producer_name 2,
/// producer_version 3, doc_string 6, graph 7, opset_import 8 (OperatorSetIdProto domain 1,
/// version 2), metadata_props 14 (StringStringEntryProto key 1, value 2). GraphProto node 1,
/// name 2, initializer 5, doc_string 10, input 11, output 12. NodeProto input 1, output 2,
/// name 3, op_type 4, attribute 5. AttributeProto name 1, f 2, i 3, s 4, t 5, floats 7,
/// ints 8, type 20 (FLOAT 1, INT 2, STRING 3, TENSOR 4, FLOATS 6, INTS 7). TensorProto dims 1,
/// data_type 2, name 8, raw_data 9 (little-endian). ValueInfoProto name 1, type 2, doc_string
/// 3; TypeProto tensor_type 1 (elem_type 1, shape 2); TensorShapeProto dim 1 (dim_value 1,
/// dim_param 2). proto2 repeated scalars without `[packed = true]` (dims, ints, floats) are
/// written one tag per element, as protoc does.
public enum ONNX {
  /// IR version 8 goes with opset 17 (ONNX 1.12), which every current runtime reads.
  public static let irVersion = 8
  /// The default-domain operator set the graphs use.
  public static let opsetVersion = 17

  /// TensorProto.DataType values.
  public enum ElementType: Int64, Sendable {
    case float = 1
    case int64 = 7
  }

  /// A constant tensor (an initialiser or a tensor attribute).
  public struct Tensor: Sendable, Equatable {
    public var name: String
    public var dims: [Int]
    public var elementType: ElementType
    /// The values, little-endian, row-major.
    public var rawData: [UInt8]

    public init(name: String, floats: [Float], shape: [Int]) {
      precondition(shape.reduce(1, *) == floats.count, "ONNX.Tensor \(name): \(floats.count) values for shape \(shape)")
      self.name = name
      dims = shape
      elementType = .float
      rawData = littleEndianBytes(floats)
    }

    public init(name: String, int64s: [Int64], shape: [Int]) {
      precondition(shape.reduce(1, *) == int64s.count, "ONNX.Tensor \(name): \(int64s.count) values for shape \(shape)")
      self.name = name
      dims = shape
      elementType = .int64
      var raw: [UInt8] = []
      raw.reserveCapacity(8 * int64s.count)
      for v in int64s { appendLittleEndian(&raw, UInt64(bitPattern: v), bytes: 8) }
      rawData = raw
    }

    func encode(_ w: inout ProtobufWriter) {
      for d in dims { w.int(1, Int64(d)) }
      w.int(2, elementType.rawValue)
      w.string(8, name)
      w.bytes(9, rawData)
    }
  }

  /// A node attribute value.
  public enum Attribute: Sendable, Equatable {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(Tensor)
    case floats([Float])
    case ints([Int])

    func encode(name: String, _ w: inout ProtobufWriter) {
      w.string(1, name)
      switch self {
      case .float(let f):
        w.float(2, f)
        w.int(20, 1)
      case .int(let i):
        w.int(3, Int64(i))
        w.int(20, 2)
      case .string(let s):
        w.string(4, s)
        w.int(20, 3)
      case .tensor(let t):
        w.message(5) { t.encode(&$0) }
        w.int(20, 4)
      case .floats(let fs):
        for f in fs { w.float(7, f) }
        w.int(20, 6)
      case .ints(let values):
        for v in values { w.int(8, Int64(v)) }
        w.int(20, 7)
      }
    }
  }

  /// One operator application.
  public struct Node: Sendable, Equatable {
    public var opType: String
    public var name: String
    /// Value names; "" marks an omitted optional input.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [(String, Attribute)]

    public init(_ opType: String, name: String, inputs: [String], outputs: [String], attributes: [(String, Attribute)] = []) {
      self.opType = opType
      self.name = name
      self.inputs = inputs
      self.outputs = outputs
      self.attributes = attributes
    }

    public static func == (a: Node, b: Node) -> Bool {
      a.opType == b.opType && a.name == b.name && a.inputs == b.inputs && a.outputs == b.outputs
        && a.attributes.count == b.attributes.count && zip(a.attributes, b.attributes).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    func encode(_ w: inout ProtobufWriter) {
      for i in inputs { w.string(1, i) }
      for o in outputs { w.string(2, o) }
      w.string(3, name)
      w.string(4, opType)
      for (key, value) in attributes { w.message(5) { value.encode(name: key, &$0) } }
    }
  }

  /// A tensor dimension: a number, or a named symbol (dynamic).
  public enum Dimension: Sendable, Equatable {
    case value(Int)
    case parameter(String)
  }

  /// A graph input or output: name, element type and shape.
  public struct ValueInfo: Sendable, Equatable {
    public var name: String
    public var elementType: ElementType
    public var shape: [Dimension]
    public var documentation: String

    public init(name: String, elementType: ElementType = .float, shape: [Dimension], documentation: String = "") {
      self.name = name
      self.elementType = elementType
      self.shape = shape
      self.documentation = documentation
    }

    func encode(_ w: inout ProtobufWriter) {
      w.string(1, name)
      w.message(2) { type in
        type.message(1) { tensor in
          tensor.int(1, elementType.rawValue)
          tensor.message(2) { shapeProto in
            for d in shape {
              shapeProto.message(1) { dim in
                switch d {
                case .value(let v): dim.int(1, Int64(v))
                case .parameter(let p): dim.string(2, p)
                }
              }
            }
          }
        }
      }
      if !documentation.isEmpty { w.string(3, documentation) }
    }
  }

  /// A computation graph: nodes in topological order, constant initialisers, inputs, outputs.
  public struct Graph: Sendable, Equatable {
    public var name: String
    public var nodes: [Node]
    public var initializers: [Tensor]
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var documentation: String

    public init(name: String, nodes: [Node], initializers: [Tensor], inputs: [ValueInfo], outputs: [ValueInfo], documentation: String = "") {
      self.name = name
      self.nodes = nodes
      self.initializers = initializers
      self.inputs = inputs
      self.outputs = outputs
      self.documentation = documentation
    }

    func encode(_ w: inout ProtobufWriter) {
      for n in nodes { w.message(1) { n.encode(&$0) } }
      w.string(2, name)
      for t in initializers { w.message(5) { t.encode(&$0) } }
      if !documentation.isEmpty { w.string(10, documentation) }
      for i in inputs { w.message(11) { i.encode(&$0) } }
      for o in outputs { w.message(12) { o.encode(&$0) } }
    }
  }

  /// A whole model file: a graph, the opset it uses, producer and free-form metadata.
  public struct Model: Sendable, Equatable {
    public var graph: Graph
    public var producerName: String
    public var producerVersion: String
    public var documentation: String
    /// `metadata_props`, in order (keys must be unique).
    public var metadata: [(String, String)]
    public var irVersion: Int
    public var opsetVersion: Int

    public init(
      graph: Graph, producerName: String, producerVersion: String, documentation: String = "",
      metadata: [(String, String)] = [], irVersion: Int = ONNX.irVersion, opsetVersion: Int = ONNX.opsetVersion
    ) {
      self.graph = graph
      self.producerName = producerName
      self.producerVersion = producerVersion
      self.documentation = documentation
      self.metadata = metadata
      self.irVersion = irVersion
      self.opsetVersion = opsetVersion
    }

    public static func == (a: Model, b: Model) -> Bool {
      a.graph == b.graph && a.producerName == b.producerName && a.producerVersion == b.producerVersion
        && a.documentation == b.documentation && a.metadata.map(\.0) == b.metadata.map(\.0)
        && a.metadata.map(\.1) == b.metadata.map(\.1) && a.irVersion == b.irVersion && a.opsetVersion == b.opsetVersion
    }

    /// The `.onnx` file's bytes.
    public func encoded() -> [UInt8] {
      var w = ProtobufWriter()
      w.int(1, Int64(irVersion))
      w.string(2, producerName)
      w.string(3, producerVersion)
      if !documentation.isEmpty { w.string(6, documentation) }
      w.message(7) { graph.encode(&$0) }
      w.message(8) { opset in
        opset.string(1, "")
        opset.int(2, Int64(opsetVersion))
      }
      for (key, value) in metadata {
        w.message(14) { entry in
          entry.string(1, key)
          entry.string(2, value)
        }
      }
      return w.bytes
    }
  }

  /// Builds a graph node by node, with unique value names.
  public struct GraphBuilder: Sendable {
    public private(set) var nodes: [Node] = []
    public private(set) var initializers: [Tensor] = []
    private var used: Set<String> = []

    public init(reserving names: [String] = []) {
      used = Set(names)
    }

    /// `base`, or `base_2`, `base_3`, … when taken.
    public mutating func uniqueName(_ base: String) -> String {
      var name = base
      var k = 2
      while used.contains(name) {
        name = "\(base)_\(k)"
        k += 1
      }
      used.insert(name)
      return name
    }

    /// Adds a float initialiser; returns its name.
    @discardableResult
    public mutating func constant(_ name: String, floats: [Float], shape: [Int]) -> String {
      let n = uniqueName(name)
      initializers.append(Tensor(name: n, floats: floats, shape: shape))
      return n
    }

    /// Adds an int64 initialiser; returns its name.
    @discardableResult
    public mutating func constant(_ name: String, int64s: [Int64], shape: [Int]) -> String {
      let n = uniqueName(name)
      initializers.append(Tensor(name: n, int64s: int64s, shape: shape))
      return n
    }

    /// Adds a node with one output, named after the node; returns the output's name.
    @discardableResult
    public mutating func add(_ opType: String, _ inputs: [String], _ attributes: [(String, Attribute)] = [], name: String) -> String {
      let n = uniqueName(name)
      nodes.append(Node(opType, name: n, inputs: inputs, outputs: [n], attributes: attributes))
      return n
    }

    /// Renames the output of the last node (e.g. to the graph's output name).
    public mutating func renameLastOutput(to name: String) {
      guard let last = nodes.indices.last else { preconditionFailure("GraphBuilder: no node to rename") }
      used.insert(name)
      nodes[last].outputs = [name]
    }
  }
}

/// The values' bytes in little-endian order (a plain copy on little-endian machines).
func littleEndianBytes(_ values: [Float]) -> [UInt8] {
  #if _endian(little)
    return values.withUnsafeBytes { Array($0) }
  #else
    var out: [UInt8] = []
    out.reserveCapacity(4 * values.count)
    for f in values { appendLittleEndian(&out, UInt64(f.bitPattern), bytes: 4) }
    return out
  #endif
}

func appendLittleEndian(_ out: inout [UInt8], _ v: UInt64, bytes: Int) {
  for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
}
