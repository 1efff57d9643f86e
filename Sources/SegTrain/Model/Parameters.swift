/// A named range of the flat parameter buffer: one weight or bias tensor.
///
/// Layers hold views, never arrays: the values live in one flat `[Float]` that the model
/// owns (and the gradients in a second buffer of the same size, at the same offsets), so
/// the optimizer update, gradient clipping and checkpoint IO are each one loop over one
/// buffer (llm.c's `malloc_and_point_parameters`).
public struct ParameterView: Hashable, Sendable, Codable {
  /// A dotted name, e.g. `down0.conv1.weight`.
  public var name: String
  /// The first element in the flat buffer.
  public var offset: Int
  /// The logical shape (for a convolution weight: C_out, C_in, k, k as PyTorch stores it).
  public var shape: [Int]
  /// Elements in the view (the product of `shape`).
  public var count: Int { shape.reduce(1, *) }
  /// `offset ..< offset + count`.
  public var range: Range<Int> { offset..<(offset + count) }

  public init(name: String, offset: Int, shape: [Int]) {
    self.name = name
    self.offset = offset
    self.shape = shape
  }
}

/// Hands out consecutive views of a flat buffer while a network is being built.
public struct ParameterAllocator: Sendable {
  /// The views handed out so far, in order.
  public private(set) var views: [ParameterView] = []
  /// Elements handed out so far (the size the flat buffer must have).
  public private(set) var count = 0

  public init() {}

  /// The next `shape.product` elements, under `name`.
  public mutating func allocate(_ name: String, shape: [Int]) -> ParameterView {
    precondition(shape.allSatisfy { $0 > 0 }, "ParameterAllocator: empty shape \(shape) for \(name)")
    let v = ParameterView(name: name, offset: count, shape: shape)
    views.append(v)
    count += v.count
    return v
  }
}
