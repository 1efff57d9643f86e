import SegCore

/// The shape of a 4-D tensor in NCHW order: batch N, channels C, height H, width W.
public struct TensorShape: Hashable, Sendable, Codable, CustomStringConvertible {
  /// Batch size N (tiles in the batch).
  public var n: Int
  /// Channels C.
  public var c: Int
  /// Height H (rows).
  public var h: Int
  /// Width W (columns).
  public var w: Int

  public init(n: Int, c: Int, h: Int, w: Int) {
    precondition(n >= 0 && c >= 0 && h >= 0 && w >= 0, "TensorShape: negative extent \(n)×\(c)×\(h)×\(w)")
    self.n = n
    self.c = c
    self.h = h
    self.w = w
  }

  /// N·C·H·W.
  public var count: Int { n * c * h * w }
  /// H·W, the elements of one channel plane.
  public var plane: Int { h * w }
  /// C·H·W, the elements of one batch item.
  public var item: Int { c * h * w }

  public var description: String { "\(n)×\(c)×\(h)×\(w)" }
}

/// A float32 tensor in NCHW layout: element (n, c, y, x) is at `((n·C + c)·H + y)·W + x`.
///
/// A value type over one flat `[Float]` (copy-on-write). Layers work on the flat storage
/// through unsafe pointers; this type is the public, checked face used by tests and callers.
public struct Tensor: Sendable, Equatable {
  public private(set) var shape: TensorShape
  /// The elements, NCHW row-major. Must keep `shape.count` elements: write elements in place
  /// (`t.data[i] = v`), do not append or remove. Every layer checks this on entry. (A property
  /// observer would enforce it, but would also copy the whole array on every element write.)
  public var data: [Float]

  /// A tensor of the given shape holding `data` (NCHW order).
  public init(shape: TensorShape, data: [Float]) {
    precondition(data.count == shape.count, "Tensor: data has \(data.count) elements, shape \(shape) needs \(shape.count)")
    self.shape = shape
    self.data = data
  }

  /// A tensor of the given shape filled with `value`.
  public init(shape: TensorShape, repeating value: Float = 0) {
    self.shape = shape
    self.data = [Float](repeating: value, count: shape.count)
  }

  /// A tensor N×C×H×W filled with `value`.
  public init(n: Int, c: Int, h: Int, w: Int, repeating value: Float = 0) {
    self.init(shape: TensorShape(n: n, c: c, h: h, w: w), repeating: value)
  }

  /// Whether `data` holds exactly `shape.count` elements.
  public var isConsistent: Bool { data.count == shape.count }

  /// The flat index of element (n, c, y, x).
  @inline(__always)
  public func index(_ n: Int, _ c: Int, _ y: Int, _ x: Int) -> Int {
    ((n * shape.c + c) * shape.h + y) * shape.w + x
  }

  /// Element (n, c, y, x).
  public subscript(n: Int, c: Int, y: Int, x: Int) -> Float {
    get {
      precondition(n < shape.n && c < shape.c && y < shape.h && x < shape.w && min(n, c, y, x) >= 0, "Tensor: index (\(n), \(c), \(y), \(x)) outside \(shape)")
      return data[index(n, c, y, x)]
    }
    set {
      precondition(n < shape.n && c < shape.c && y < shape.h && x < shape.w && min(n, c, y, x) >= 0, "Tensor: index (\(n), \(c), \(y), \(x)) outside \(shape)")
      data[index(n, c, y, x)] = newValue
    }
  }

  /// A tensor of standard normal draws times `scale`, from `rng` (for tests and init).
  public static func gaussian(_ shape: TensorShape, scale: Float = 1, rng: inout RandomStream) -> Tensor {
    var t = Tensor(shape: shape)
    for i in 0..<t.data.count { t.data[i] = Float(rng.gaussian()) * scale }
    return t
  }
}

/// Stops with a message when a tensor's storage does not match its shape.
@inline(__always)
func checkTensor(_ t: Tensor, _ what: @autoclosure () -> String) {
  precondition(t.isConsistent, "\(what()): tensor of shape \(t.shape) holds \(t.data.count) elements")
}

extension Tensor {
  /// A new tensor of `shape` that `kernel` writes from this tensor's elements (the tensor face of
  /// a layer's raw one-input kernel).
  func mapped(to shape: TensorShape, _ what: @autoclosure () -> String, _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    checkTensor(self, what())
    var out = Tensor(shape: shape)
    data.withUnsafeBufferPointer { xp in
      out.data.withUnsafeMutableBufferPointer { yp in kernel(base(xp), base(yp)) }
    }
    return out
  }

  /// A new tensor of `shape` that `kernel` writes from `a` and `b` (a raw backward kernel: the
  /// forward input or output, and dY).
  static func combined(
    _ a: Tensor, _ b: Tensor, to shape: TensorShape, _ what: @autoclosure () -> String,
    _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
  ) -> Tensor {
    checkTensor(a, what())
    checkTensor(b, what())
    var out = Tensor(shape: shape)
    a.data.withUnsafeBufferPointer { ap in
      b.data.withUnsafeBufferPointer { bp in
        out.data.withUnsafeMutableBufferPointer { op in kernel(base(ap), base(bp), base(op)) }
      }
    }
    return out
  }
}
