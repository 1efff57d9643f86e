/// The largest absolute difference between two equally long sequences, and where it is.
public func maxAbsDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> (value: Double, index: Int)
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
  precondition(a.count == b.count, "maxAbsDifference: \(a.count) vs \(b.count) elements")
  var worst = 0.0
  var at = 0
  for (i, (x, y)) in zip(a, b).enumerated() {
    let d = abs(Double(x) - Double(y))
    if d > worst || d.isNaN {
      worst = d
      at = i
      if d.isNaN { break }
    }
  }
  return (worst, at)
}

/// Seeds 0..<n, for sweeps over many random draws.
public func seeds(_ n: Int) -> [UInt64] { (0..<UInt64(n)).map { $0 } }
