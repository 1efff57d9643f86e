/// What a geometric transform reads where it maps outside its input.
public enum BorderMode: String, Sendable, Codable, CaseIterable {
  /// Mirror without repeating the edge pixel: … c b | a b c d | c b … (numpy `reflect`,
  /// OpenCV `BORDER_REFLECT_101`, scipy.ndimage `mirror`).
  case reflect
  /// A fixed fill value (images: `fill`; masks: 0).
  case constant
  /// Repeat the edge pixel: … a a | a b c d | d d …
  case edge
}

/// Coordinate folding for the border modes, on continuous coordinates (pixel centres at
/// integers, the domain is [0, n − 1]).
public enum Border {
  /// Folds x into [0, n − 1] by mirroring at 0 and n − 1 (period 2(n − 1)), which is
  /// numpy's `reflect` for integer x and the continuous extension of it in between; for
  /// bilinear sampling it equals reflecting the two neighbours (OpenCV REFLECT_101).
  @inline(__always)
  public static func reflect(_ x: Float, _ n: Int) -> Float {
    if n <= 1 { return 0 }
    let last = Float(n - 1)
    if x >= 0 && x <= last { return x }
    let period = 2 * last
    // One reflection: exact (−x and period − x need no rounding, by Sterbenz's lemma).
    if x < 0 && x >= -last { return -x }
    if x > last && x <= period { return period - x }
    var r = x.truncatingRemainder(dividingBy: period)
    if r < 0 { r += period }
    return r > last ? period - r : r
  }

  /// Clamps x into [0, n − 1].
  @inline(__always)
  public static func clamp(_ x: Float, _ n: Int) -> Float {
    min(max(x, 0), Float(max(n - 1, 0)))
  }

  /// Whether x lies in the domain [−0.5, n − 0.5) that nearest-neighbour sampling covers
  /// (bilinear sampling of a constant border treats the same domain as inside).
  @inline(__always)
  public static func inside(_ x: Float, _ n: Int) -> Bool {
    x >= -0.5 && x < Float(n) - 0.5
  }

  /// Folds a coordinate by `mode`; returns nil for `constant` when x is outside.
  @inline(__always)
  public static func fold(_ x: Float, _ n: Int, _ mode: BorderMode) -> Float? {
    switch mode {
    case .reflect: return reflect(x, n)
    case .edge: return clamp(x, n)
    case .constant: return inside(x, n) ? clamp(x, n) : nil
    }
  }
}
