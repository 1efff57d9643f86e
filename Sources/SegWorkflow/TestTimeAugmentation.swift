import SegTrain

/// Test-time augmentation: predict a tile under several symmetries of the square and average
/// the probabilities mapped back (nnU-Net's mirroring; Ronneberger et al. average over
/// rotations and flips for the ISBI challenge too).
///
/// Every element of the dihedral group of the square is `transpose?` then `flip rows?` then
/// `flip columns?`; each step is its own inverse, so the inverse runs them in reverse order.
/// Tiles are square and a multiple of the network's 2^depth, so each transformed tile keeps the
/// pooling grid of the original.
public enum TestTimeAugmentation: String, Sendable, CaseIterable {
  /// The tile as it is.
  case none
  /// The 4 mirrorings: none, left–right, up–down, both.
  case flips
  /// The 8 symmetries of the square (the mirrorings, with and without transposition).
  case d4

  /// One symmetry of the square.
  public struct Symmetry: Sendable, Equatable {
    public var transpose: Bool
    public var flipRows: Bool
    public var flipColumns: Bool

    public init(transpose: Bool, flipRows: Bool, flipColumns: Bool) {
      self.transpose = transpose
      self.flipRows = flipRows
      self.flipColumns = flipColumns
    }
  }

  /// The symmetries averaged over, the identity first.
  public var symmetries: [Symmetry] {
    let transposes: [Bool] = self == .d4 ? [false, true] : [false]
    let flips: [(Bool, Bool)] = self == .none ? [(false, false)] : [(false, false), (false, true), (true, false), (true, true)]
    return transposes.flatMap { t in flips.map { Symmetry(transpose: t, flipRows: $0.0, flipColumns: $0.1) } }
  }

  /// Applies `s` (or its inverse) to every plane of a square N × C × S × S tensor.
  public static func apply(_ s: Symmetry, to x: Tensor, inverse: Bool = false) -> Tensor {
    let shape = x.shape
    precondition(shape.h == shape.w, "TestTimeAugmentation: tiles must be square, not \(shape.h)×\(shape.w)")
    let n = shape.w
    var out = Tensor(shape: shape)
    x.data.withUnsafeBufferPointer { src in
      out.data.withUnsafeMutableBufferPointer { dst in
        for plane in 0..<(shape.n * shape.c) {
          let o = plane * n * n
          for y in 0..<n {
            for xx in 0..<n {
              // Forward: (y, x) → transpose → flip rows → flip columns. Output pixel (y, x) reads
              // the source pixel that lands there.
              var sy = y, sx = xx
              if inverse {
                if s.transpose { swap(&sy, &sx) }
                if s.flipRows { sy = n - 1 - sy }
                if s.flipColumns { sx = n - 1 - sx }
              } else {
                if s.flipColumns { sx = n - 1 - sx }
                if s.flipRows { sy = n - 1 - sy }
                if s.transpose { swap(&sy, &sx) }
              }
              dst[o + y * n + xx] = src[o + sy * n + sx]
            }
          }
        }
      }
    }
    return out
  }

  /// The mean of `predict` over the symmetries, each mapped back: `predict` takes and returns
  /// square tensors (a valid network's output is the centred crop, which every symmetry keeps
  /// centred).
  public func average(_ input: Tensor, _ predict: (Tensor) -> Tensor) -> Tensor {
    let all = symmetries
    guard all.count > 1 else { return predict(input) }
    var sum: Tensor? = nil
    for s in all {
      let p = Self.apply(s, to: predict(Self.apply(s, to: input)), inverse: true)
      if var acc = sum {
        for i in 0..<acc.data.count { acc.data[i] += p.data[i] }
        sum = acc
      } else {
        sum = p
      }
    }
    guard var mean = sum else { return predict(input) }
    let k = 1 / Float(all.count)
    for i in 0..<mean.data.count { mean.data[i] *= k }
    return mean
  }
}
